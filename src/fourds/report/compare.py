"""The report's comparisons with clip-bootstrap intervals: every headline, pretrained against
the random-init control, and each scale against the next (fourds.report.bootstrap).

`TaskScores.read` loads one task's per-clip values for every (scale, regime) and draws one
set of clip resamples shared by all of them, so every comparison is paired.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from fourds.report.bootstrap import (
    SAMPLES,
    ClipScores,
    Estimate,
    draw_counts,
    gain_estimate,
    headline_estimate,
    read_clip_scores,
)

PRETRAINED, CONTROL = "frozen", "random_init"


@dataclasses.dataclass(frozen=True)
class TaskScores:
    """Per-clip scores of one task: (scale, regime) -> ClipScores, and the shared draws."""

    task: str
    metric: str
    higher_is_better: bool
    scores: dict[tuple[str, str], ClipScores]
    counts: np.ndarray  # [draws, clips]

    @classmethod
    def read(
        cls,
        readout_root: str | Path,
        scales: list[str],
        task: str,
        regimes: list[str],
        metric: str,
        higher_is_better: bool,
        samples: int = SAMPLES,
        seed: int = 0,
    ) -> TaskScores:
        """Read readout_root/<scale>-<task>-<regime>/clips.csv for every scale and regime.

        Raises:
            ValueError: the stages scored different numbers of test clips (not one test set).
        """
        scores = {
            (scale, regime): read_clip_scores(
                Path(readout_root) / f"{scale}-{task}-{regime}" / "clips.csv", metric
            )
            for scale in scales
            for regime in regimes
        }
        sizes = {len(score.values) for score in scores.values()}
        if len(sizes) != 1:
            raise ValueError(f"{task}: the readouts scored different test sets ({sorted(sizes)})")
        counts = draw_counts(sizes.pop(), samples, seed)
        return cls(task, metric, higher_is_better, scores, counts)

    def estimate(self, scale: str, regime: str) -> Estimate:
        return headline_estimate(self.scores[scale, regime], self.counts)

    def draws(self, scale: str, regime: str) -> np.ndarray:
        """[draws] the headline of (scale, regime) in every clip resample."""
        return self.scores[scale, regime].headline(self.counts)

    def gain(self, better: tuple[str, str], worse: tuple[str, str]) -> Estimate:
        """Improvement of (scale, regime) `better` over `worse`, positive when it is better."""
        return gain_estimate(
            self.scores[better], self.scores[worse], self.counts, self.higher_is_better
        )


def verdict(gain: Estimate) -> str:
    """Whether a gain's interval excludes 0, in words."""
    if gain.low > 0:
        return "better, outside the noise"
    if gain.high < 0:
        return "worse, outside the noise"
    return "within the noise"


def control_rows(scores: TaskScores, scales: list[str]) -> list[dict]:
    """Per scale: the pretrained and random-init headlines and the gain of pretraining."""
    rows = []
    for scale in scales:
        gain = scores.gain((scale, PRETRAINED), (scale, CONTROL))
        rows.append(
            {
                "scale": scale,
                "pretrained": str(scores.estimate(scale, PRETRAINED)),
                "random init": str(scores.estimate(scale, CONTROL)),
                "gain of pretraining": str(gain),
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
                "comparison": f"{larger} vs {smaller}",
                "gain of the larger": str(gain),
                "verdict": verdict(gain),
            }
        )
    return rows
