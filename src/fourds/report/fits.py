"""Power-law fits of a metric against scale (parameters or FLOPs), with bootstrap bands.

Lower-is-better metrics (AbsRel, end-point error) are fitted as y = a * x^b. Higher-is-better
metrics in [0, 1] (Jaccard, IoU, accuracy) approach 1, not 0, so their error 1 - y is fitted
instead and the curve is drawn as 1 - a * x^b. The fit is least squares in log-log space.

The band is a pairs bootstrap: resample the (x, y) points with replacement, refit, and take
the pointwise percentiles of the refitted curves (resamples with fewer than two distinct x are
skipped: no line goes through them). Given clip-bootstrap draws of each point's y
(fourds.report.bootstrap), each resample also takes its y from one draw, so the band carries
the test clips' uncertainty as well as the scales'. With a handful of scales the band is wide,
which is the honest answer to "how well is the trend supported"; the exponent's interval says
whether the data support any trend at all (an interval containing 0 does not).
"""

from __future__ import annotations

import dataclasses

import numpy as np

BOOTSTRAP_SAMPLES = 2000
LEVEL = 0.9  # central interval of the band and of the exponent


@dataclasses.dataclass(frozen=True)
class PowerLaw:
    """y = coefficient * x ** exponent."""

    coefficient: float
    exponent: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.coefficient * np.asarray(x, dtype=np.float64) ** self.exponent


def fit_power_law(x: np.ndarray, y: np.ndarray) -> PowerLaw:
    """Least-squares power law through points x [n] > 0, y [n] > 0 (log-log).

    Raises:
        ValueError: fewer than two distinct x, or a non-positive value.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(np.unique(x)) < 2:
        raise ValueError("a power law needs at least two distinct x values")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("a power law fit needs positive x and y")
    exponent, intercept = np.polyfit(np.log(x), np.log(y), deg=1)
    return PowerLaw(float(np.exp(intercept)), float(exponent))


@dataclasses.dataclass(frozen=True)
class ScalingFit:
    """A fitted trend of a metric and its bootstrap band, on `grid`.

    law: the fitted power law (of the metric, or of 1 - metric when `of_error`).
    grid: x values [g] the curve and band are evaluated at.
    curve, lower, upper: the metric [g] on the fitted curve and the band's edges.
    exponent_interval: the bootstrap interval of the exponent.
    """

    law: PowerLaw
    of_error: bool
    grid: np.ndarray
    curve: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    exponent_interval: tuple[float, float]

    @property
    def trend_supported(self) -> bool:
        """Whether the exponent's interval excludes 0 (the metric does change with scale)."""
        low, high = self.exponent_interval
        return low > 0 or high < 0

    def describe(self) -> str:
        """One line: the law, its exponent interval, and whether the trend is supported."""
        target = "1 - metric" if self.of_error else "metric"
        low, high = self.exponent_interval
        verdict = "supported" if self.trend_supported else "not supported (interval contains 0)"
        return (
            f"{target} = {self.law.coefficient:.3g} x^{self.law.exponent:+.3f}; exponent "
            f"{LEVEL:.0%} interval [{low:+.3f}, {high:+.3f}]: trend {verdict}"
        )


def fit_scaling(
    x: np.ndarray,
    y: np.ndarray,
    higher_is_better: bool,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
    y_draws: np.ndarray | None = None,
) -> ScalingFit:
    """Fit the metric y [n] against scale x [n] and bootstrap its band (module docstring).

    y_draws: optional clip-bootstrap draws of y, [draws, n]; a resample uses draw k % draws.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def error(values: np.ndarray) -> np.ndarray:  # what is fitted; its own inverse
        return 1.0 - values if higher_is_better else values

    law = fit_power_law(x, error(y))
    grid = np.geomspace(x.min(), x.max(), 50)
    rng = np.random.default_rng(seed)
    curves, exponents = [], []
    for k in range(samples):
        index = rng.integers(len(x), size=len(x))
        drawn = y if y_draws is None else y_draws[k % len(y_draws)]
        target = error(drawn[index])
        if len(np.unique(x[index])) < 2 or not np.all(target > 0):
            continue
        resampled = fit_power_law(x[index], target)
        curves.append(resampled(grid))
        exponents.append(resampled.exponent)
    tails = 100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2
    low, high = np.percentile(error(np.array(curves)), tails, axis=0)
    exponent_low, exponent_high = np.percentile(exponents, tails)
    return ScalingFit(
        law=law,
        of_error=higher_is_better,
        grid=grid,
        curve=error(law(grid)),
        lower=np.minimum(low, high),
        upper=np.maximum(low, high),
        exponent_interval=(float(exponent_low), float(exponent_high)),
    )
