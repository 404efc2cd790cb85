"""The report's front page: per task and scale, the pretrained readout against its task's
no-learning baseline, against the control (fourds.config.regimes.verdict_control) and against
the smallest scale, each
gain with its 90% paired clip-bootstrap interval (fourds.report.compare), and one sentence of
what the verdicts add up to.

A readout is flagged when its gain over the baseline does not lie above zero outside the noise
(`Cell.flag`): level with the baseline (the test cannot tell it from a predictor that ignores
the video; a readout that collapsed to the baseline's prediction lands here) or below it.
"""

from __future__ import annotations

import dataclasses

from fourds.config.regimes import verdict_control
from fourds.config.tasks import TASKS
from fourds.report.bootstrap import Estimate
from fourds.report.compare import BETTER, LEVEL, WORSE, TaskScores, direction, gain_text
from fourds.report.lineage import link, readout_stage

FLAGS = {LEVEL: "level with its baseline", WORSE: "below its baseline"}


@dataclasses.dataclass(frozen=True)
class Cell:
    """One task at one scale: the pretrained readout's headline, its baseline's on the same
    clips, the control's headline, and the readout's gains over the baseline, the control and
    the smallest scale (None where there is no control, or at the smallest scale)."""

    headline: Estimate
    baseline: Estimate
    control: Estimate | None
    over_baseline: Estimate
    over_control: Estimate | None
    over_smallest: Estimate | None

    @property
    def flag(self) -> str | None:
        """Why the readout is flagged (module docstring), or None when it beats its baseline."""
        return FLAGS.get(direction(self.over_baseline))


@dataclasses.dataclass(frozen=True)
class FrontPage:
    """The verdicts of one study: grid[task][scale] for the pretrained `regime`, the control
    the verdicts compare it with (a regime of fourds.config.regimes; None when the study ran
    none), and each scale's pretraining loss: on the held-out clips at the end of the run
    (`loss_name` "held-out"), or, for a study whose runs did not measure it, the final
    training loss ("final training")."""

    tasks: list[str]
    scales: list[str]
    regime: str
    control: str | None
    grid: dict[str, dict[str, Cell]]
    losses: dict[str, float]
    loss_name: str = "held-out"
    failed: dict[str, int] = dataclasses.field(default_factory=dict)  # task in stage -> clips

    @classmethod
    def of(
        cls,
        scores: dict[str, TaskScores],
        scales: list[str],
        regime: str,
        losses: dict[str, float],
        loss_name: str = "held-out",
    ) -> FrontPage:
        """The cells of every task in `scores` at every scale; the comparison with the control
        (`verdict_control` of the regimes every task ran at the smallest scale) where there is
        one."""
        ran = [
            {ran_regime for ran_scale, ran_regime in task_scores.scores if ran_scale == scales[0]}
            for task_scores in scores.values()
        ]
        control = verdict_control(set.intersection(*ran)) if ran else None
        if control == regime:
            control = None
        grid = {
            task: {scale: _cell(task_scores, scale, scales[0], regime, control) for scale in scales}
            for task, task_scores in scores.items()
        }
        failed = {
            f"{task} in {readout_stage(scale, ran_regime)}": clip_scores.failed
            for task, task_scores in scores.items()
            for (scale, ran_regime), clip_scores in task_scores.scores.items()
            if clip_scores.failed
        }
        return cls(
            list(scores), list(scales), regime, control, grid, dict(losses), loss_name, failed
        )

    def by_direction(self, comparison: str, scale: str) -> dict[str, list[str]]:
        """BETTER, WORSE, LEVEL -> the tasks whose `comparison` at `scale` goes that way
        (comparison: a Cell field, "over_control", "over_smallest" or "over_baseline")."""
        groups = {BETTER: [], WORSE: [], LEVEL: []}
        for task in self.tasks:
            groups[direction(getattr(self.grid[task][scale], comparison))].append(task)
        return groups

    def flagged(self) -> list[tuple[str, str, str]]:
        """(task, scale, flag) of every flagged readout, task by task."""
        return [
            (task, scale, cell.flag)
            for task, row in self.grid.items()
            for scale, cell in row.items()
            if cell.flag
        ]


def _cell(scores: TaskScores, scale: str, smallest: str, regime: str, control: str | None) -> Cell:
    """The pretrained readout of `scale` and its comparisons."""
    return Cell(
        headline=scores.estimate(scale, regime),
        baseline=scores.baseline(scale, regime),
        control=scores.estimate(scale, control) if control else None,
        over_baseline=scores.over_baseline(scale, regime),
        over_control=scores.gain((scale, regime), (scale, control)) if control else None,
        over_smallest=(
            scores.gain((scale, regime), (smallest, regime)) if scale != smallest else None
        ),
    )


def grid_rows(page: FrontPage) -> list[dict[str, str]]:
    """The front page's grid, a row per task: the task and its headline, its no-learning
    baseline (every distinct value over the scales' clips, normally one), and per scale the
    readout's headline, flag and comparisons (lines joined with <br>, for a Markdown table).
    Each headline links to its readout stage's lineage, and each comparison to the stage it is
    compared with (fourds.report.lineage.link)."""
    rows = []
    for task in page.tasks:
        cells = page.grid[task]
        baselines = " / ".join(dict.fromkeys(str(cell.baseline) for cell in cells.values()))
        row = {
            "task": f"**{task}**<br>{TASKS[task].title}",
            "no-learning baseline": f"{baselines}<br>{TASKS[task].baseline}",
        }
        for scale, cell in cells.items():
            row[scale] = _cell_text(cell, task, scale, page)
        rows.append(row)
    return rows


def _cell_text(cell: Cell, task: str, scale: str, page: FrontPage) -> str:
    """The headline (bold, linked to its stage; with its flag), then one line per comparison:
    what it is compared with (linked to that stage; the baseline is scored by the readout's own
    stage), the verdict, and the gain with its interval."""
    flag = f" ⚠ {cell.flag}" if cell.flag else ""
    lines = [link(f"**{cell.headline}**", readout_stage(scale, page.regime)) + flag]
    comparisons = [
        ("vs baseline", cell.over_baseline, None),
        ("vs control", cell.over_control, (scale, page.control)),
        (f"vs {page.scales[0]}", cell.over_smallest, (page.scales[0], page.regime)),
    ]
    for name, gain, other in comparisons:
        if gain is not None:
            label = link(name, readout_stage(other[0], other[1])) if other else name
            lines.append(f"{label}: {gain_text(gain)}")
    return "<br>".join(lines)
