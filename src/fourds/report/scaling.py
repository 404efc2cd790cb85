"""Collect per-scale metrics into tables and draw the scaling and loss plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fourds.atomic import atomic_path  # noqa: E402
from fourds.report.fits import LEVEL, ScalingFit, fit_scaling  # noqa: E402
from fourds.report.paper import PaperSeries  # noqa: E402

HEADLINE = {
    "depth": ("abs_rel", "depth AbsRel (lower is better)"),
    "pose": ("end_point_error", "camera end-point error (lower is better)"),
    "tracking": ("average_jaccard", "tracking average Jaccard (higher is better)"),
    "boxes": ("miou", "box tracking mean IoU (higher is better)"),
    "classification": ("top1", "top-1 accuracy (higher is better)"),
}


def collect(
    scales: list[str],
    tasks: list[str],
    regimes: list[str],
    pretrain_root: str | Path,
    readout_root: str | Path,
) -> list[dict]:
    """One row per (scale, task, regime): parameter count, pretraining FLOPs and loss, and the
    readout metrics (from readout_root/<scale>-<task>-<regime>/metrics.json), its no-learning
    baseline's as `baseline_<metric>`.

    Only the scales, tasks and regimes named are read, so stale folders of other runs are
    ignored.
    """
    rows = []
    for scale in scales:
        pretrain = json.loads((Path(pretrain_root) / scale / "metrics.json").read_text())
        for task in tasks:
            for regime in regimes:
                path = Path(readout_root) / f"{scale}-{task}-{regime}" / "metrics.json"
                readout = json.loads(path.read_text())
                row = {
                    "scale": scale,
                    "task": task,
                    "regime": regime,
                    "params": pretrain["params"],
                    "pretrain_flops": pretrain["pretrain_flops"],
                    "pretrain_loss": pretrain["loss"],
                }
                shared = ("scale", "task", "regime", "params", "baseline")
                row.update({k: v for k, v in readout.items() if k not in shared})
                baseline = readout.get("baseline", {})
                row.update({f"baseline_{k}": v for k, v in baseline.items()})
                rows.append(row)
    return rows


def write_tables(rows: list[dict], out_dir: str | Path) -> list[Path]:
    """One CSV per task and regime, `scaling_<task>.csv` for frozen readouts and
    `scaling_<task>_<regime>.csv` for the others (a row per scale), atomically; returns the
    paths. Tasks have different metrics, so each table has its own columns.
    """
    paths = []
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for task, regime in dict.fromkeys((row["task"], row["regime"]) for row in rows):
        table = [row for row in rows if (row["task"], row["regime"]) == (task, regime)]
        name = f"scaling_{task}.csv" if regime == "frozen" else f"scaling_{task}_{regime}.csv"
        path = Path(out_dir) / name
        with atomic_path(path) as partial, open(partial, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
        paths.append(path)
    return paths


def higher_is_better(task: str) -> bool:
    """Whether a larger headline of `task` is better."""
    return "higher" in HEADLINE[task][1]


AXES = {
    "params": "encoder parameters",
    "pretrain_flops": "pretraining FLOPs (encoder, forward + backward)",
}


def plot_scaling(
    rows: list[dict],
    task: str,
    x_key: str = "params",
    path: str | Path | None = None,
    paper: PaperSeries | None = None,
    draws: dict[tuple[str, str], np.ndarray] | None = None,
):
    """Headline metric of `task` against `x_key` (log axes) with a power-law fit and its
    bootstrap band per readout regime; with `paper`, a second panel shows the paper's series
    and its fit. Returns (figure, {regime: ScalingFit or None when it cannot be fitted}).

    draws: (scale, regime) -> clip-bootstrap draws of the headline [B]
        (fourds.report.compare.TaskScores.draws); with them the band also carries the test
        clips' uncertainty, and each point gets its interval as an error bar.
    """
    metric, label = HEADLINE[task]
    better_up = higher_is_better(task)
    panels = 2 if paper is not None else 1
    figure, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.9), squeeze=False)
    axis = axes[0, 0]
    fits = {}
    for regime in sorted({row["regime"] for row in rows if row["task"] == task}):
        points = sorted(
            (row[x_key], row[metric], row["scale"])
            for row in rows
            if row["task"] == task and row["regime"] == regime
        )
        x, y = np.array([p[0] for p in points]), np.array([p[1] for p in points])
        y_draws = None
        if draws is not None:
            y_draws = np.stack([draws[scale, regime] for _, _, scale in points], axis=1)
            tails = 100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2
            low, high = np.nanpercentile(y_draws, tails, axis=0)
            error = np.stack([np.maximum(y - low, 0), np.maximum(high - y, 0)])
            axis.errorbar(x, y, yerr=error, fmt="none", alpha=0.5)
        line = axis.plot(x, y, "o", label=f"ours ({regime})")[0]
        for value_x, value_y, scale in points:
            axis.annotate(scale, (value_x, value_y), textcoords="offset points", xytext=(4, 4),
                          fontsize=8)  # fmt: skip
        fits[regime] = _draw_fit(axis, x, y, better_up, line.get_color(), y_draws)
    _finish(axis, AXES[x_key], label, f"{task}: attention readout (this package)")
    if paper is not None:
        axis = axes[0, 1]
        sizes, x, y = zip(*paper.points(), strict=True)
        line = axis.plot(x, y, "s", color="grey", label="paper (frozen)")[0]
        for size, value_x, value_y in zip(sizes, x, y, strict=True):
            rough = "~" if size in paper.approximate else ""
            axis.annotate(f"{rough}{size}", (value_x, value_y), textcoords="offset points",
                          xytext=(4, 4), fontsize=8)  # fmt: skip
        _draw_fit(axis, np.array(x), np.array(y), better_up, line.get_color())
        _finish(axis, "encoder parameters (nominal)", paper.metric,
                f"the paper's numbers: {paper.benchmark}")  # fmt: skip
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure, fits


def _draw_fit(
    axis, x: np.ndarray, y: np.ndarray, higher_is_better: bool, colour, y_draws=None
) -> ScalingFit | None:
    """Draw the fitted curve and its band; None (nothing drawn) with too few distinct points."""
    if len(np.unique(x)) < 2 or not np.all((1.0 - y if higher_is_better else y) > 0):
        return None
    fit = fit_scaling(x, y, higher_is_better, y_draws=y_draws)
    axis.plot(fit.grid, fit.curve, "-", color=colour, lw=1,
              label=f"fit: exponent {fit.law.exponent:+.3f}")  # fmt: skip
    axis.fill_between(fit.grid, fit.lower, fit.upper, color=colour, alpha=0.15,
                      label=f"{LEVEL:.0%} bootstrap band")  # fmt: skip
    return fit


def _finish(axis, x_label: str, y_label: str, title: str) -> None:
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel(x_label)
    axis.set_ylabel(y_label)
    axis.set_title(title, fontsize=10)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7)


def plot_loss_curves(scales: list[str], pretrain_root: str | Path, path: str | Path | None = None):
    """Pretraining loss against step for every scale (one line each); returns the figure."""
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    for scale in scales:
        with open(Path(pretrain_root) / scale / "loss.csv", newline="") as handle:
            curve = list(csv.DictReader(handle))
        axis.plot([int(p["step"]) for p in curve], [float(p["loss"]) for p in curve], label=scale)
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_ylabel("masked pixel MSE")
    axis.set_title("MAE pretraining loss")
    axis.legend()
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure


def markdown_table(rows: list[dict]) -> str:
    """Rows as a Markdown table, floats to 4 significant digits."""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
