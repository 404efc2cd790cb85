"""Readable log axes for the report's figures: a few round ticks with plain labels (0.25, 2M,
and FLOPs over a power of ten the axis label names once), and point labels kept inside.

Matplotlib's own log ticks write 3.4x10^-1 within a decade and crowd a few decades with
labels; these put 1, 2 and 5 in each decade over up to two decades, 1 per decade beyond,
and within less than one decade a handful of evenly spaced round values.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from fourds.report.numbers import compact

MAX_TICKS = 5


def log_ticks(low: float, high: float) -> list[float]:
    """Round values in [low, high] (0 < low < high) to tick a log axis with (module
    docstring); at least two."""
    decades = math.log10(high / low)
    if decades < 1:
        ticks = MaxNLocator(nbins=MAX_TICKS - 1, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
    else:
        multiples = (1, 2, 5) if decades <= 2 else (1,)
        first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
        ticks = [m * 10.0**e for e in range(first, last + 1) for m in multiples]
    return [float(tick) for tick in ticks if low <= tick <= high]


def plain_log_axis(axis, label: Callable[[float], str] = compact) -> None:
    """Tick a log `axis` (an Axes' xaxis or yaxis, once its limits are final) at log_ticks of
    its limits, labelled by `label`, with no minor ticks."""
    low, high = sorted(axis.get_view_interval())
    axis.set_major_locator(FixedLocator(log_ticks(low, high)))
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(FuncFormatter(lambda value, _: label(value)))


def label_points(axis, points: list[tuple[float, float, str]]) -> None:
    """Write each (x, y, text) beside its point, on a pale box that keeps it legible over
    lines and bands: to the right, except for the rightmost points, written to the left so
    they stay inside the axes."""
    right_edge = max(x for x, _, _ in points)
    for x, y, text in points:
        inside = x == right_edge
        axis.annotate(
            text,
            (x, y),
            textcoords="offset points",
            xytext=(-7 if inside else 7, 0),
            ha="right" if inside else "left",
            va="center",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.8, "lw": 0},
        )
