"""Clip-bootstrap intervals for the readout headlines, their differences and scaling fits.

Every readout stage of a ladder scores the same test clips, and writes per clip its headline
value and its weight in the headline (clips.csv; see fourds.evaluate.tasks.base.Evaluation).
One bootstrap draw resamples the test clips with replacement and recomputes every stage's
headline (the weighted mean over the drawn clips) from the same draw: a paired bootstrap, so
a difference between two scales or between pretrained and random-init readouts is judged on
the same clips, without the clip-to-clip variance they share. An interval is the central
LEVEL of the draws; a difference whose interval excludes 0 is outside the noise of the test
set (it says nothing about the noise of pretraining itself: one seed per scale).
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np

from fourds.report.numbers import significant

SAMPLES = 2000
LEVEL = 0.9


@dataclasses.dataclass(frozen=True)
class ClipScores:
    """One readout stage's per-clip headline values [N] (NaN: unscored) and weights [N]."""

    values: np.ndarray
    weights: np.ndarray

    def headline(self, counts: np.ndarray | None = None) -> np.ndarray | float:
        """The weighted mean over clips; with draw counts [B, N] (how often each clip is drawn),
        one headline per draw [B] (NaN for a draw with no scored clip)."""
        values = np.nan_to_num(self.values)
        if counts is None:
            return float(np.sum(self.weights * values) / np.sum(self.weights))
        weights = counts * self.weights
        total = weights.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, (weights @ values) / total, np.nan)


def read_clip_scores(path: str | Path, headline: str) -> ClipScores:
    """The `headline` column and the weights of a readout stage's clips.csv."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or headline not in rows[0]:
        raise ValueError(f"{path}: no per-clip {headline!r} values")
    return ClipScores(
        values=np.array([float(row[headline]) for row in rows]),
        weights=np.array([float(row["weight"]) for row in rows]),
    )


def draw_counts(clips: int, samples: int = SAMPLES, seed: int = 0) -> np.ndarray:
    """[samples, clips]: how often each clip is drawn in each bootstrap resample."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(clips, np.full(clips, 1.0 / clips), size=samples).astype(np.float64)


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A value and its bootstrap interval."""

    value: float
    low: float
    high: float

    @classmethod
    def of(cls, value: float, draws: np.ndarray) -> Estimate:
        tails = 100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2
        low, high = np.nanpercentile(draws, tails)
        return cls(float(value), float(low), float(high))

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def format(self, signed: bool = False) -> str:
        """'value [low, high]' to three significant figures; with `signed`, each with its sign
        (for a difference)."""
        value, low, high = (significant(v, signed=signed) for v in dataclasses.astuple(self))
        return f"{value} [{low}, {high}]"

    def __str__(self) -> str:
        return self.format()


def headline_estimate(scores: ClipScores, counts: np.ndarray) -> Estimate:
    """A stage's headline with its clip-bootstrap interval."""
    return Estimate.of(scores.headline(), scores.headline(counts))


def gain_estimate(
    better: ClipScores, worse: ClipScores, counts: np.ndarray, higher_is_better: bool
) -> Estimate:
    """How much `better` improves on `worse` (positive: it does), paired over the same draws."""
    sign = 1.0 if higher_is_better else -1.0
    value = sign * (better.headline() - worse.headline())
    return Estimate.of(value, sign * (better.headline(counts) - worse.headline(counts)))
