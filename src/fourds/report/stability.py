"""Whether a regeneration keeps a study's verdicts: every comparison of the front page
(fourds.report.front: each pretrained readout against its baseline, the control
and the smallest scale) moved by at most a fraction of its pinned interval's half-width.

Numbers within the regeneration contract (fourds.tolerances) can still add up to a different
verdict where a comparison sits at the edge of its interval; this check reads what a reader of
the report reads. Issue 43 fixes the fraction at a quarter.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fourds.config import load_params
from fourds.report.bootstrap import Estimate
from fourds.report.front import FrontPage
from fourds.report.terminal import read_front_page
from fourds.shipped import Difference

ALLOWED_SHIFT = 0.25  # of the pinned interval's half-width
COMPARISONS = {"over_baseline": "vs baseline", "over_control": "vs control"}


@dataclasses.dataclass(frozen=True)
class VerdictShift:
    """One comparison of the front page, pinned and regenerated."""

    task: str
    scale: str
    comparison: str  # "vs baseline", "vs control", "vs <smallest scale>"
    pinned: Estimate
    regenerated: Estimate

    @property
    def relative(self) -> float:
        """How far the gain moved, in half-widths of the pinned interval."""
        half_width = (self.pinned.high - self.pinned.low) / 2
        moved = abs(self.regenerated.value - self.pinned.value)
        return moved / half_width if half_width > 0 else (0.0 if moved == 0 else float("inf"))


def verdict_shifts(pinned: FrontPage, regenerated: FrontPage) -> list[VerdictShift]:
    """Every comparison of the `pinned` front page beside the `regenerated` one's.

    Raises:
        ValueError: the two pages are not of one study (other tasks, scales or regime).
    """
    shape = (pinned.tasks, pinned.scales, pinned.regime, pinned.control)
    if shape != (regenerated.tasks, regenerated.scales, regenerated.regime, regenerated.control):
        raise ValueError(
            f"the regeneration reads out {regenerated.tasks} at {regenerated.scales} "
            f"({regenerated.regime}); the pin {pinned.tasks} at {pinned.scales} ({pinned.regime})"
        )
    names = {**COMPARISONS, "over_smallest": f"vs {pinned.scales[0]}"}
    shifts = []
    for task in pinned.tasks:
        for scale in pinned.scales:
            for field, name in names.items():
                before = getattr(pinned.grid[task][scale], field)
                after = getattr(regenerated.grid[task][scale], field)
                if before is not None:
                    shifts.append(VerdictShift(task, scale, name, before, after))
    return shifts


def moved_verdicts(
    pinned: FrontPage, regenerated: FrontPage, allowed: float = ALLOWED_SHIFT
) -> list[VerdictShift]:
    """The comparisons that moved by more than `allowed` half-widths of their pinned
    interval (none: the regeneration tells the reader what the pin does)."""
    return [shift for shift in verdict_shifts(pinned, regenerated) if shift.relative > allowed]


def verdict_differences(shipped: Path, runs: Path) -> list[Difference]:
    """The comparisons of the study shipped in `shipped` (its params.yaml, readout clips.csv
    and pretrain metrics.json) that its regeneration in `runs` moved by more than
    ALLOWED_SHIFT half-widths, as `fourds compare` lists differences; none where `runs` lacks
    a readout's per-clip results (`compare` names the missing or differing files) or the pin
    has none."""
    study = load_params(shipped / "params.yaml").study_layout()
    try:
        pinned, regenerated = read_front_page(study, shipped), read_front_page(study, runs)
    except (FileNotFoundError, ValueError):  # no per-clip headlines, or not one test set
        return []
    return [
        Difference(
            "report (verdicts)",
            f"{shift.task} at {shift.scale} {shift.comparison}",
            shift.pinned.format(signed=True),
            f"{shift.regenerated.format(signed=True)}: moved {shift.relative:.2f} half-widths",
        )
        for shift in moved_verdicts(pinned, regenerated)
    ]
