"""The report's comparisons with clip-bootstrap intervals: every headline, each readout against
its task's no-learning baseline, pretrained against the random-init control, and each scale
against the next (fourds.report.bootstrap). In the tables, every number links to the lineage of
the readout stage that scored it (fourds.report.lineage.link).

`TaskScores.read` loads one task's per-clip values for every (scale, regime), and the baseline's
on the same clips, and draws one set of clip resamples shared by all of them, so every
comparison is paired.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from fourds import layout
from fourds.config.regimes import PRETRAINED, REGIMES
from fourds.report.bootstrap import (
    SAMPLES,
    ClipScores,
    Estimate,
    draw_counts,
    gain_estimate,
    headline_estimate,
    read_clip_scores,
)
from fourds.report.lineage import link, readout_stage


@dataclasses.dataclass(frozen=True)
class TaskScores:
    """Per-clip scores of one task: (scale, regime) -> ClipScores of the readout and of the
    task's no-learning baseline on the same clips, and the shared draws."""

    task: str
    metric: str
    higher_is_better: bool
    scores: dict[tuple[str, str], ClipScores]
    baselines: dict[tuple[str, str], ClipScores]
    counts: np.ndarray  # [draws, clips]

    @classmethod
    def read(
        cls,
        runs: str | Path,
        scales: list[str],
        task: str,
        regimes: list[str],
        metric: str,
        higher_is_better: bool,
        samples: int = SAMPLES,
        seed: int = 0,
    ) -> TaskScores:
        """Read each readout's values per clip in the study folder `runs` (fourds.layout) for
        every scale and regime: the `metric` column and the baseline's `baseline_<metric>`.

        Raises:
            ValueError: the stages scored different numbers of test clips (not one test set).
        """
        paths = {
            (scale, regime): layout.ReadoutFiles.in_study(runs, scale, task, regime).clips
            for scale in scales
            for regime in regimes
        }
        scores = {stage: read_clip_scores(path, metric) for stage, path in paths.items()}
        baselines = {
            stage: read_clip_scores(path, f"baseline_{metric}") for stage, path in paths.items()
        }
        sizes = {score.clips for score in scores.values()}
        if len(sizes) != 1:
            raise ValueError(f"{task}: the readouts scored different test sets ({sorted(sizes)})")
        counts = draw_counts(sizes.pop(), samples, seed)
        return cls(task, metric, higher_is_better, scores, baselines, counts)

    def estimate(self, scale: str, regime: str) -> Estimate:
        return headline_estimate(self.scores[scale, regime], self.counts)

    def draws(self, scale: str, regime: str) -> np.ndarray:
        """[draws] the headline of (scale, regime) in every resample of clips and seeds."""
        return self.scores[scale, regime].headline(self.counts)

    def linked(self, text: str, scale: str, regime: str) -> str:
        """`text` linked to the lineage of the readout stage of (scale, regime)."""
        return link(text, readout_stage(scale, regime))

    def gain(self, better: tuple[str, str], worse: tuple[str, str]) -> Estimate:
        """Improvement of (scale, regime) `better` over `worse`, positive when it is better."""
        return gain_estimate(
            self.scores[better], self.scores[worse], self.counts, self.higher_is_better
        )

    def baseline(self, scale: str, regime: str) -> Estimate:
        """The no-learning baseline's headline on the clips of (scale, regime)."""
        return headline_estimate(self.baselines[scale, regime], self.counts)

    def over_baseline(self, scale: str, regime: str) -> Estimate:
        """Improvement of the (scale, regime) readout over its baseline, on the same clips."""
        return gain_estimate(
            self.scores[scale, regime],
            self.baselines[scale, regime],
            self.counts,
            self.higher_is_better,
        )


BETTER, WORSE, LEVEL = "better", "worse", "level"


def direction(gain: Estimate) -> str:
    """BETTER or WORSE when a gain's interval lies above or below 0, else LEVEL."""
    if gain.low > 0:
        return BETTER
    if gain.high < 0:
        return WORSE
    return LEVEL


def gain_text(gain: Estimate | None) -> str:
    """'better +0.0055 [+0.0024, +0.0090]': the direction, then the gain with its interval;
    '' where there is no comparison (None)."""
    return "" if gain is None else f"{direction(gain)} {gain.format(signed=True)}"


def verdict(gain: Estimate) -> str:
    """Whether a gain's interval excludes 0, in words."""
    return {
        BETTER: "better, outside the noise",
        WORSE: "worse, outside the noise",
        LEVEL: "within the noise",
    }[direction(gain)]


def control_rows(scores: TaskScores, scales: list[str], control: str) -> list[dict]:
    """Per scale: the pretrained and the `control` regime's headlines, their no-learning
    baseline's on the same clips, and the gain of pretraining."""
    rows = []
    for scale in scales:
        gain = scores.gain((scale, PRETRAINED), (scale, control))
        rows.append(
            {
                "scale": scale,
                "pretrained": scores.linked(
                    str(scores.estimate(scale, PRETRAINED)), scale, PRETRAINED
                ),
                "control": scores.linked(str(scores.estimate(scale, control)), scale, control),
                "baseline": scores.linked(
                    str(scores.baseline(scale, PRETRAINED)), scale, PRETRAINED
                ),
                "gain of pretraining": gain.format(signed=True),
                "verdict": verdict(gain),
            }
        )
    return rows


def scale_rows(scores: TaskScores, scales: list[str], regime: str = PRETRAINED) -> list[dict]:
    """Each scale against the next, and the largest against the smallest, in `regime`."""
    pairs = list(zip(scales, scales[1:], strict=False))
    if len(scales) > 2:
        pairs.append((scales[0], scales[-1]))
    rows = []
    for smaller, larger in pairs:
        gain = scores.gain((larger, regime), (smaller, regime))
        rows.append(
            {
                "comparison": (
                    f"{scores.linked(larger, larger, regime)} vs "
                    f"{scores.linked(smaller, smaller, regime)}"
                ),
                "gain of the larger": gain.format(signed=True),
                "verdict": verdict(gain),
            }
        )
    return rows


def baseline_rows(scores: TaskScores, scales: list[str], regimes: list[str]) -> list[dict]:
    """Per scale and regime: the readout's headline, its no-learning baseline's on the same
    clips, and the readout's gain over it."""
    rows = []
    for scale in scales:
        for regime in regimes:
            gain = scores.over_baseline(scale, regime)
            rows.append(
                {
                    "scale": scale,
                    "regime": regime,
                    "readout": scores.linked(str(scores.estimate(scale, regime)), scale, regime),
                    "baseline": scores.linked(str(scores.baseline(scale, regime)), scale, regime),
                    "gain over the baseline": gain.format(signed=True),
                    "verdict": verdict(gain),
                }
            )
    return rows


def regimes_title(regimes: list[str]) -> str:
    """What a table of the regimes' headlines side by side shows, as a section title: "Frozen
    against the control at pretraining's start", "Frozen against fine-tuned"."""
    names = [REGIMES[regime].name for regime in regimes]
    title = f"{names[0]} against {', '.join(names[1:])}"
    return title[0].upper() + title[1:]
