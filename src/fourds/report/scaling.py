"""Collect per-scale metrics into one table and draw the scaling plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fourds.records import atomic_path  # noqa: E402

HEADLINE = {
    "depth": ("abs_rel", "depth AbsRel (lower is better)"),
    "pose": ("end_point_error", "camera end-point error (lower is better)"),
    "tracking": ("average_jaccard", "tracking average Jaccard (higher is better)"),
    "boxes": ("miou", "box tracking mean IoU (higher is better)"),
    "classification": ("top1", "top-1 accuracy (higher is better)"),
}


def collect(
    scales: list[str], tasks: list[str], pretrain_root: str | Path, readout_root: str | Path
) -> list[dict]:
    """One row per (scale, task): parameter count, pretraining loss and the readout metrics.

    Only the scales and tasks named are read, so stale folders of other ladders are ignored.
    """
    rows = []
    for scale in scales:
        pretrain = json.loads((Path(pretrain_root) / scale / "metrics.json").read_text())
        for task in tasks:
            readout = json.loads(
                (Path(readout_root) / f"{scale}-{task}" / "metrics.json").read_text()
            )
            row = {
                "scale": scale,
                "task": task,
                "params": pretrain["params"],
                "pretrain_loss": pretrain["loss"],
            }
            row.update({k: v for k, v in readout.items() if k not in ("scale", "task", "params")})
            rows.append(row)
    return rows


def write_tables(rows: list[dict], out_dir: str | Path) -> list[Path]:
    """One CSV per task, `scaling_<task>.csv` (a row per scale), atomically; returns the paths.

    Tasks have different metrics, so each table has its own columns.
    """
    paths = []
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for task in dict.fromkeys(row["task"] for row in rows):
        table = [row for row in rows if row["task"] == task]
        path = Path(out_dir) / f"scaling_{task}.csv"
        with atomic_path(path) as partial, open(partial, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
        paths.append(path)
    return paths


def plot_scaling(rows: list[dict], task: str, path: str | Path | None = None):
    """Headline metric of `task` against encoder parameters (log x); returns the figure."""
    metric, label = HEADLINE[task]
    points = sorted(
        (row["params"], row[metric], row["scale"]) for row in rows if row["task"] == task
    )
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    axis.plot([p[0] for p in points], [p[1] for p in points], "o-")
    for params, value, scale in points:
        axis.annotate(scale, (params, value), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axis.set_xscale("log")
    axis.set_xlabel("encoder parameters")
    axis.set_ylabel(label)
    axis.set_title(f"{task}: attention readout")
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure


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
