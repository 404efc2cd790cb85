"""Collect per-scale metrics into tables and draw the scaling and loss plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fourds import layout  # noqa: E402
from fourds.atomic import atomic_path  # noqa: E402
from fourds.config.regimes import PRETRAINED, REGIMES  # noqa: E402
from fourds.config.tasks import TASKS  # noqa: E402
from fourds.report.axes import label_points, plain_log_axis  # noqa: E402
from fourds.report.fits import LEVEL, ScalingFit, fit_scaling  # noqa: E402
from fourds.report.numbers import compact, human_count, power_of_ten  # noqa: E402
from fourds.report.paper import PaperSeries  # noqa: E402
from fourds.report.tables import write_csv  # noqa: E402
from fourds.results_files import read_metrics  # noqa: E402


def collect(
    scales: list[str],
    tasks: list[str],
    regimes: list[str],
    runs: str | Path,
) -> list[dict]:
    """One row per (scale, task, regime): parameter count, pretraining FLOPs and loss, and the
    readout metrics (each readout's metrics in the study folder `runs`, fourds.layout), its
    no-learning baseline's as `baseline_<metric>`. A control was never pretrained: its rows have 0
    pretraining FLOPs and no pretraining loss (None).

    Only the scales, tasks and regimes named are read, so stale folders of other runs are
    ignored.
    """
    rows = []
    for scale in scales:
        pretrain_dir = Path(runs) / layout.pretrain(scale).folder
        pretrain = json.loads((pretrain_dir / "metrics.json").read_text())
        for task in tasks:
            for regime in regimes:
                path = layout.ReadoutFiles.in_study(runs, scale, task, regime).metrics
                readout = json.loads(path.read_text())
                pretrained = REGIMES[regime].pretrained
                row = {
                    "scale": scale,
                    "task": task,
                    "regime": regime,
                    "params": pretrain["params"],
                    "pretrain_flops": pretrain["pretrain_flops"] if pretrained else 0,
                    "pretrain_loss": pretrain["loss"] if pretrained else None,
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
        name = f"scaling_{task}.csv" if regime == PRETRAINED else f"scaling_{task}_{regime}.csv"
        path = Path(out_dir) / name
        write_csv(path, table)
        paths.append(path)
    return paths


def plot_scaling(
    rows: list[dict],
    task: str,
    x_key: str = "params",
    path: str | Path | None = None,
    paper: PaperSeries | None = None,
    draws: dict[tuple[str, str], np.ndarray] | None = None,
):
    """Headline metric of `task` against `x_key` ("params" or "pretrain_flops"; log axes) with
    a power-law fit and its bootstrap band per readout regime; with `paper`, a second panel
    shows the paper's series and its fit. A regime without that x (the random-init control has
    no pretraining FLOPs) is left out. The points of the first regime drawn carry the scales'
    names. Returns (figure, {regime: ScalingFit or None when it cannot be fitted}).

    draws: (scale, regime) -> clip-bootstrap draws of the headline [B]
        (fourds.report.compare.TaskScores.draws); with them the band also carries the test
        clips' uncertainty, and each point gets its interval as an error bar.
    """
    metric, label = TASKS[task].headline, TASKS[task].title
    better_up = TASKS[task].higher_is_better
    panels = 2 if paper is not None else 1
    figure, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.5), squeeze=False)
    axis = axes[0, 0]
    fits = {}
    task_rows = [row for row in rows if row["task"] == task]
    regimes = sorted({row["regime"] for row in task_rows})
    regimes = [r for r in regimes if all(row[x_key] > 0 for row in task_rows if row["regime"] == r)]
    for regime in regimes:
        points = sorted(
            (row[x_key], row[metric], row["scale"]) for row in task_rows if row["regime"] == regime
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
        if regime == regimes[0]:
            label_points(axis, points)
        fits[regime] = _draw_fit(axis, x, y, better_up, line.get_color(), y_draws)
    x_label, x_tick = _x_axis(x_key, [row[x_key] for row in task_rows if row[x_key] > 0])
    _finish(axis, x_label, label, f"{task}: attention readout (this package)", x_tick)
    if paper is not None:
        axis = axes[0, 1]
        sizes, x, y = zip(*paper.points(), strict=True)
        line = axis.plot(x, y, "s", color="grey", label="paper (frozen)")[0]
        names = [f"~{size}" if size in paper.approximate else size for size in sizes]
        label_points(axis, list(zip(x, y, names, strict=True)))
        _draw_fit(axis, np.array(x), np.array(y), better_up, line.get_color())
        _finish(axis, "encoder parameters (nominal)", paper.metric,
                f"the paper's numbers: {paper.benchmark}", _x_axis("params", x)[1])  # fmt: skip
    figure.tight_layout()
    if path is not None:
        with atomic_path(path, "a figure") as partial:
            figure.savefig(partial, dpi=120)  # the temporary keeps the suffix: the format
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


def _x_axis(x_key: str, values: list[float]):
    """The x label and tick label function of `x_key`: parameters in human units ("2M"),
    FLOPs over the power of ten of the smallest value, named once in the label."""
    if x_key == "pretrain_flops":
        exponent = power_of_ten(values)
        label = f"pretraining FLOPs (×1e{exponent}; encoder, forward + backward)"
        return label, lambda value: compact(value / 10**exponent)
    return "encoder parameters", lambda value: human_count(value, trim=True)


def _finish(axis, x_label: str, y_label: str, title: str, x_tick) -> None:
    """Log axes with plain tick labels (x ones by `x_tick`), margins for the point labels, the
    legend under the axes, off the points."""
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.margins(x=0.1, y=0.08)
    axis.set_xlabel(x_label)
    axis.set_ylabel(y_label)
    axis.set_title(title, fontsize=10)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    plain_log_axis(axis.xaxis, x_tick)
    plain_log_axis(axis.yaxis)


def caption(fits: dict, regimes: list[str], scales: int, paper: PaperSeries | None = None) -> str:
    """What a scaling figure draws, for the line under it: the error bars, what the shaded
    bands are and why they are wide (with one of `scales`, that there is no fit), the paper's
    panel (`paper`: its series, cited), and any regime of `regimes` left out (not in `fits`:
    the random-init control on the FLOPs axis)."""
    text = f"Error bars: {LEVEL:.0%} clip-bootstrap intervals."
    if scales > 1:
        text += (
            f" Shaded: each fit's {LEVEL:.0%} bootstrap band (scales and test clips resampled); "
            f"with {scales} scales it is wide, up to the whole plot, which says that the data do "
            "not pin the trend down (the exponent's interval is below), not that the fit failed."
        )
    else:
        text += " No fit: a power law needs two or more scales, and the study has one."
    if paper is not None:
        text += (
            f" Right: the paper's numbers ({paper.benchmark}; {paper.cite()}), their band from "
            "resampling the scales only."
        )
    left_out = [REGIMES[regime].name for regime in regimes if regime not in fits]
    if left_out:
        text += f" Not drawn: {', '.join(left_out)}, which spent no pretraining FLOPs."
    return text


def plot_loss_curves(scales: list[str], runs: str | Path, path: str | Path | None = None):
    """Pretraining loss against step for every scale (one line each); returns the figure."""
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    for scale in scales:
        with open(Path(runs) / layout.pretrain(scale).folder / "loss.csv", newline="") as handle:
            curve = list(csv.DictReader(handle))
        axis.plot([int(p["step"]) for p in curve], [float(p["loss"]) for p in curve], label=scale)
    axis.set_xlabel("step")
    return _loss_figure(figure, axis, "masked pixel MSE", "MAE pretraining loss", path)


def _loss_figure(figure, axis, ylabel: str, title: str, path: str | Path | None):
    """A loss figure's log loss axis, labels, legend and grid; saved to `path` when given."""
    axis.set_yscale("log")
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend()
    axis.grid(True, alpha=0.3)
    plain_log_axis(axis.yaxis)
    figure.tight_layout()
    if path is not None:
        with atomic_path(path, "a figure") as partial:
            figure.savefig(partial, dpi=120)  # the temporary keeps the suffix: the format
    return figure


def pretraining_losses(scales: list[str], runs: str | Path) -> tuple[dict[str, float], str]:
    """Each scale's pretraining loss as the verdicts compare it, and its name: the held-out
    loss at the end of the run ("held-out", pretrain/<scale>/metrics.json's `heldout_loss`),
    or, where a run did not measure one (a study made before held-out curves), the final
    training loss of every scale ("final training")."""
    metrics = {
        scale: read_metrics(Path(runs) / layout.pretrain(scale).folder / "metrics.json")
        for scale in scales
    }
    if all("heldout_loss" in scale_metrics for scale_metrics in metrics.values()):
        return {scale: m["heldout_loss"] for scale, m in metrics.items()}, "held-out"
    return {scale: m["loss"] for scale, m in metrics.items()}, "final training"


def plot_heldout_curves(scales: list[str], runs: str | Path, path: str | Path | None = None):
    """Held-out loss against training FLOPs (log axes), one line per scale, from each scale's
    heldout.csv (the first point, before any training, at zero FLOPs, is left out of the log
    axis); returns the figure, or None when no scale wrote a held-out curve."""
    curves = {}
    for scale in scales:
        csv_path = Path(runs) / layout.pretrain(scale).folder / "heldout.csv"
        if csv_path.is_file():
            with open(csv_path, newline="") as handle:
                curves[scale] = [row for row in csv.DictReader(handle) if int(row["step"]) > 0]
    if not curves:
        return None
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    for scale, curve in curves.items():
        flops = [float(row["train_flops"]) for row in curve]
        axis.plot(flops, [float(row["heldout_loss"]) for row in curve], marker=".", label=scale)
    axis.set_xscale("log")
    axis.set_xlabel("training FLOPs")
    title = "Held-out MAE loss against training compute"
    return _loss_figure(figure, axis, "held-out masked pixel MSE", title, path)
