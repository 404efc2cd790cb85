"""The data of `dvc plots show`'s scaling plots: one CSV per task, a row per readout.

Each row is one (scale, regime) readout: its headline with the 90% clip-bootstrap interval the
report prints (`low`, `high`), and where it is drawn. The plots (the report stage's in dvc.yaml,
the template `.dvc/plots/scaling.json`) put encoder parameters on a log axis, draw each readout
as a point with its interval and no line between scales (two scales a line would join show no
trend, only their difference), and a control (never pretrained) beside the pretrained readout of the
same scale: its `x` is its parameter count times CONTROL_SHIFT, so that the two intervals do not
hide each other (`params` keeps the exact count for the tooltip).
"""

from __future__ import annotations

from pathlib import Path

from fourds.config.regimes import REGIMES
from fourds.config.tasks import TASKS
from fourds.report.compare import TaskScores
from fourds.report.tables import write_csv

CONTROL_SHIFT = 1.12  # the control's x, as a factor of its parameters (a small step on a log axis)


def plot_columns(metric: str) -> list[str]:
    """A task's plot table columns: scale, regime, params, x, the headline (under its metric's
    name), low, high."""
    return ["scale", "regime", "params", "x", metric, "low", "high"]


def plot_rows(scores: TaskScores, params: dict[str, int], regimes: list[str]) -> list[dict]:
    """One row per (scale, regime) of a task, with the columns of `plot_columns`."""
    rows = []
    for scale, count in params.items():
        for regime in regimes:
            estimate = scores.estimate(scale, regime)
            x = count if REGIMES[regime].pretrained else round(count * CONTROL_SHIFT)
            values = (scale, REGIMES[regime].plot_label, count, x, estimate.value)
            values += (estimate.low, estimate.high)
            rows.append(dict(zip(plot_columns(scores.metric), values, strict=True)))
    return rows


def write_plot_tables(
    scores: dict[str, TaskScores], params: dict[str, int], regimes: list[str], out_dir: Path
) -> list[Path]:
    """`plot_<task>.csv` in `out_dir` for every task of the task table, atomically: a row per
    readout of the tasks in `scores`, the header alone for a task the study did not read out
    (the report stage declares every task's plot); the paths."""
    paths = []
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for task, entry in TASKS.items():
        rows = plot_rows(scores[task], params, regimes) if task in scores else []
        path = Path(out_dir) / f"plot_{task}.csv"
        write_csv(path, rows, plot_columns(entry.headline))
        paths.append(path)
    return paths
