"""The scaling law of the held-out MAE loss: every pretraining run of the world studies, and a
fit of L(N) = a N^-b + c per world.

Reads pretraining sweeps written by `fourds sweep` (`--sweep`, repeatable: each a
sweep over `curate.data`, a corpus per world, and seeds, at one recipe) and writes
`<out>/scaling_law.json` (runs and default_world at its top level, worlds under results):

    runs           one entry per run: world (the corpus's world level: "data" is the embedded
                   corpus, "standard"; "data-<level>" the level's), scale, params (encoder
                   parameters), seed, lr, steps, heldout_loss (final)
    default_world  the world the default study pins (params.yaml's curate.data)
    worlds         per world: each scale's mean loss over its seeds and spread (max - min); the
                   fit (a, b, c; least squares over the scale means, c in [0, the lowest mean));
                   per scale step the gap of the means and three times the larger seed spread;
                   and `falls`: whether the mean falls at every step by more than that

and `<out>/scaling_law.png`: each world's final loss against encoder parameters (log axes), a
point per run, the fit drawn through them.

Run: python benchmarks/scaling_law.py --sweep benchmarks/results/complexity_study.json
         --sweep benchmarks/results/catalog_study.json
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import harness
import matplotlib
import numpy as np
import torch
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CORPUS = "data"  # the embedded corpus: the standard level


def world_of(corpus: str) -> str:
    """The world level of a corpus folder: "data" is "standard", "data-<level>" is <level>."""
    return "standard" if corpus == CORPUS else corpus.removeprefix("data-")


def sweep_runs(path: Path) -> list[dict]:
    """Every run (one scale of one sweep point that ran) of the sweep file `path`."""
    sweep = json.loads(path.read_text())
    fixed = dict(item.split("=", 1) for item in sweep["config"]["set"])
    runs = []
    for point in sweep["results"]["points"].values():
        if point["status"] != "ok":
            continue
        settings = {**fixed, **point["overrides"]}
        for scale, result in point["scales"].items():
            runs.append(
                {
                    "world": world_of(settings.get("curate.data", CORPUS)),
                    "scale": scale,
                    "params": int(result["params"]),
                    "seed": int(settings.get("pretrain.seed", 0)),
                    "lr": float(settings["pretrain.lr"]),
                    "steps": int(result["steps"]),
                    "heldout_loss": float(result["heldout_loss"]),
                }
            )
    return runs


def fit_power_law(params: np.ndarray, losses: np.ndarray) -> dict[str, float]:
    """Least-squares a, b, c of L = a N^-b + c through (params [S], losses [S]): for each c on
    a fine grid in [0, min(losses)), a and b by a line through log(L - c) against log N; the c
    of the smallest squared error in L. b < 0 says the loss rises with N."""
    best = None
    for c in np.linspace(0.0, losses.min(), 400, endpoint=False):
        slope, intercept = np.polyfit(np.log(params), np.log(losses - c), 1)
        a, b = float(np.exp(intercept)), float(-slope)
        error = float(np.sum((a * params**-b + c - losses) ** 2))
        if best is None or error < best["squared_error"]:
            best = {"a": a, "b": b, "c": float(c), "squared_error": error}
    return best


def world_summary(runs: list[dict]) -> dict:
    """One world's scales (by parameters), their seed means and spreads, the steps between
    them and the fit (module docstring)."""
    scales = sorted({(run["params"], run["scale"]) for run in runs})
    table = []
    for params, scale in scales:
        losses = [run["heldout_loss"] for run in runs if run["scale"] == scale]
        spread = max(losses) - min(losses)
        table.append(
            {"scale": scale, "params": params, "seeds": len(losses),
             "mean": statistics.fmean(losses), "spread": spread}
        )  # fmt: skip
    steps = []
    for smaller, larger in zip(table, table[1:], strict=False):
        gap = smaller["mean"] - larger["mean"]
        bound = 3 * max(smaller["spread"], larger["spread"])
        one_seed = min(smaller["seeds"], larger["seeds"]) < 2
        steps.append(
            {"from": smaller["scale"], "to": larger["scale"], "gap": gap,
             "three_spreads": bound, "beyond": gap > bound and not one_seed}
        )  # fmt: skip
    summary = {
        "scales": table,
        "steps": steps,
        "falls": bool(steps) and all(step["beyond"] for step in steps),
    }
    if len(table) >= 3:
        params = np.array([row["params"] for row in table], dtype=np.float64)
        means = np.array([row["mean"] for row in table])
        summary["fit"] = fit_power_law(params, means)
    return summary


def plot(runs: list[dict], worlds: dict, path: Path) -> None:
    """Final loss against encoder parameters, a colour per world, the fit through its points."""
    figure, ax = plt.subplots(figsize=(6.4, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for colour, (world, summary) in zip(colours, worlds.items(), strict=False):
        mine = [run for run in runs if run["world"] == world]
        ax.scatter([r["params"] for r in mine], [r["heldout_loss"] for r in mine],
                   color=colour, s=14, label=world)  # fmt: skip
        if "fit" in summary:
            fit = summary["fit"]
            span = np.geomspace(min(r["params"] for r in mine), max(r["params"] for r in mine))
            ax.plot(span, fit["a"] * span ** -fit["b"] + fit["c"], color=colour, lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("encoder parameters")
    ax.set_ylabel("final held-out MAE loss")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    figure.tight_layout()
    partial = path.with_name(f".{path.stem}.partial.png")
    figure.savefig(partial, dpi=110)
    partial.replace(path)


def main() -> None:
    started = time.perf_counter()
    args = harness.parse_args(__doc__.splitlines()[0], add_arguments)
    runs = [run for sweep in args.sweep for run in sweep_runs(sweep)]
    worlds = {
        world: world_summary([run for run in runs if run["world"] == world])
        for world in dict.fromkeys(run["world"] for run in runs)
    }
    params = yaml.safe_load((harness.REPO / "params.yaml").read_text())
    law = {"runs": runs, "default_world": world_of(params["curate"]["data"])}
    config = {"sweeps": [str(path) for path in args.sweep]}
    harness.write_result(
        "scaling_law", args.out, torch.device("cpu"), config, {"worlds": worlds}, started, law
    )
    plot(runs, worlds, args.out / "scaling_law.png")


def add_arguments(parser) -> None:
    parser.add_argument(
        "--sweep", type=Path, action="append", required=True, help="a `fourds sweep` result"
    )


if __name__ == "__main__":
    main()
