"""A sweep's figures: each scale's final held-out loss against the sweep's first grid key, and
every held-out curve against training FLOPs (fourds.pipeline.sweep)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def numeric(values: list[str]) -> bool:
    """Whether every value reads as a number (a log axis), not a name (one place each)."""
    try:
        [float(value) for value in values]
    except ValueError:
        return False
    return True


def _save(figure, path: Path, dpi: int) -> None:
    partial = path.with_name(f".{path.stem}.partial.png")
    figure.savefig(partial, dpi=dpi)
    plt.close(figure)
    os.replace(partial, path)


def plot_losses(results: dict, axis: str, path: Path) -> None:
    """Final held-out loss against `axis` (log when numeric), a line per scale through its
    means, a dot per point (the other keys' values: seeds)."""
    figure, ax = plt.subplots(figsize=(5.5, 3.8))
    for scale, values in results["by_scale"].items():
        ran = [(v, e) for v, e in values.items() if e["heldout_losses"]]
        place = {v: float(v) for v, _ in ran} if numeric([v for v, _ in ran]) else None
        if place is None:
            place = {v: index for index, (v, _) in enumerate(ran)}
            ax.set_xticks(list(place.values()), list(place))
        ran.sort(key=lambda item: place[item[0]])
        for value, entry in ran:
            losses = entry["heldout_losses"]
            ax.scatter([place[value]] * len(losses), losses, s=12)
        ax.plot([place[v] for v, _ in ran], [e["mean"] for _, e in ran], marker="o", label=scale)
        if all(isinstance(x, float) and x > 0 for x in place.values()):
            ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(axis)
    ax.set_ylabel("final held-out MAE loss")
    ax.set_title("Held-out loss per scale")
    ax.legend()
    ax.grid(True, alpha=0.3)
    figure.tight_layout()
    _save(figure, path, dpi=120)


def plot_curves(points: dict, scales: list[str], axis: str, path: Path) -> None:
    """The held-out curves: a panel per value of `axis`, each scale's loss against training
    FLOPs (log-log), a line per point (the other keys' values: seeds)."""
    values = list(dict.fromkeys(p["overrides"][axis] for p in points.values()))
    if numeric(values):
        values.sort(key=float)
    figure, axes = plt.subplots(
        1, len(values), figsize=(3.6 * len(values), 3.4), sharey=True, squeeze=False
    )
    colours = dict(zip(scales, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for ax, value in zip(axes[0], values, strict=True):
        for point in points.values():
            if point["overrides"][axis] != value or point["status"] != "ok":
                continue
            for scale in scales:
                curve = [
                    (flops, loss) for _, flops, loss in point["scales"][scale]["heldout_curve"]
                ]
                ax.plot(*zip(*curve[1:], strict=True), color=colours[scale], lw=1, alpha=0.8)
        for scale in scales:
            ax.plot([], [], color=colours[scale], label=scale)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{axis}={value}", fontsize=9)
        ax.set_xlabel("training FLOPs")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("held-out MAE loss")
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    _save(figure, path, dpi=110)
