"""Bootstrap intervals over clips and readout seeds for the readout headlines, their
differences and scaling fits.

Every readout stage of a ladder scores the same test clips, and writes per clip its headline
value and its weight in the headline (clips.csv; see fourds.evaluate.tasks.base.Evaluation);
a readout trained with several seeds (readouts.<task>.seeds) writes one row per seed and clip.
One bootstrap draw resamples the test clips with replacement and recomputes every stage's
headline (the weighted mean over the drawn clips) from the same draw: a paired bootstrap, so a
difference between two scales or between pretrained and random-init readouts is judged on the
same clips, without the clip-to-clip variance they share.

A stage read out with S seeds adds its training noise to every draw: its headline is the mean
over seeds of each seed's weighted clip mean, plus s / sqrt(S) times a Student-t draw with S - 1
degrees of freedom, s the standard deviation of the seeds' headlines (independent draws for
every stage, from a generator seeded by the stage's own values, so a report repeats exactly).
With few seeds this is conservative: on data with a known answer (tests/report/
test_bootstrap.py) the 90% interval of a difference covers it 98% of the time with 3 seeds,
92% with 5, where clip draws alone cover it 6% of the time. An interval is the central LEVEL of
the draws; a difference whose interval excludes 0 is outside the noise of the test set and of
the readouts' training (not of pretraining itself: one seed per scale).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from fourds.errors import ResultsError
from fourds.report.numbers import significant
from fourds.results_files import read_clip_rows

SAMPLES = 2000
LEVEL = 0.9


@dataclasses.dataclass(frozen=True)
class ClipScores:
    """One readout stage's per-clip headline values [S, N] (S seeds, N clips; NaN: unscored)
    and weights [S, N]; [N] arrays are one seed's. `failed`: how many (seed, clip) values were
    not finite though the clip counted (a failed computation, not an unscored clip); they are
    left out (weight 0), never counted as a number, and said (fourds.report.summary)."""

    values: np.ndarray
    weights: np.ndarray
    failed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", np.atleast_2d(self.values))
        object.__setattr__(self, "weights", np.atleast_2d(self.weights))

    @property
    def seeds(self) -> int:
        return self.values.shape[0]

    @property
    def clips(self) -> int:
        return self.values.shape[1]

    def headline(self, counts: np.ndarray | None = None) -> np.ndarray | float:
        """The mean over seeds of each seed's weighted mean over clips; with draw counts
        [B, N] (how often each clip is drawn), one headline per draw [B], the seeds' spread
        included (see the module docstring; NaN for a draw with no scored clip)."""
        values = np.nan_to_num(self.values)
        if counts is None:
            return float(self.seed_headlines().mean())
        weights = counts[:, None, :] * self.weights  # [B, S, N]
        total = weights.sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_seed = np.where(total > 0, np.sum(weights * values, axis=2) / total, np.nan)
        mean = per_seed.mean(axis=1)
        if self.seeds == 1:
            return mean
        spread = self.seed_headlines().std(ddof=1) / np.sqrt(self.seeds)
        return mean + spread * self._generator().standard_t(self.seeds - 1, size=len(mean))

    def seed_headlines(self) -> np.ndarray:
        """[S] each seed's headline: its weighted mean over clips."""
        values = np.nan_to_num(self.values)
        return np.sum(self.weights * values, axis=1) / np.sum(self.weights, axis=1)

    def _generator(self) -> np.random.Generator:
        """A generator seeded by this stage's values: its own draws, the same in every report."""
        digest = hashlib.sha256(np.ascontiguousarray(self.values).tobytes()).digest()
        return np.random.default_rng(list(np.frombuffer(digest, dtype=np.uint32)))


def read_clip_scores(path: str | Path, headline: str) -> ClipScores:
    """The `headline` column and the weights of a readout stage's clips.csv, by seed (rows of
    one seed when the file has no "seed" column)."""
    rows = read_clip_rows(path)
    if not rows or headline not in rows[0] or "weight" not in rows[0]:
        raise ResultsError(f"{path}: no per-clip {headline!r} values")
    seeds = sorted({row.get("seed", "0") for row in rows}, key=int)
    by_seed = [[row for row in rows if row.get("seed", "0") == seed] for seed in seeds]
    if len({len(seed_rows) for seed_rows in by_seed}) != 1:
        raise ValueError(f"{path}: the seeds scored different numbers of clips")
    try:
        values = np.array([[float(row[headline]) for row in seed_rows] for seed_rows in by_seed])
        weights = np.array([[float(row["weight"]) for row in seed_rows] for seed_rows in by_seed])
    except ValueError as error:  # a cell that is no number (a file cut mid-number)
        raise ResultsError(f"{path}: damaged results file ({error})") from None
    failed = ~np.isfinite(values) & (weights > 0)
    values[failed], weights[failed] = np.nan, 0.0
    return ClipScores(values, weights, int(failed.sum()))


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
