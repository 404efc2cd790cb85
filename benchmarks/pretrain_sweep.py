"""A pretraining sweep as DVC experiments: every scale's held-out loss over a grid of params.

Each point of the grid (every combination of the --grid values, on top of the --set overrides)
is one `dvc exp run --temp` of the ladder's pretrain stages in --repo, a clone of this
repository that has regenerated the main job (so that curate comes from DVC's cache), named
`<name>-<k1>-<v1>-...` so that `dvc exp show` lists it there; it runs outside the clone's
workspace, which it leaves as it is. After each point, every scale's metrics and held-out curve
(fourds.train.heldout) are read from the experiment's commit and the
whole sweep so far is written to `<out>/<name>.json`, with a figure `<out>/<name>.png`: each
scale's final held-out loss against the first grid key (log axis), a point per value of the
others (seeds), a line through their mean; and `<out>/<name>_curves.png`, every held-out curve
against training FLOPs, a panel per value of the first key. A point already in the file is not
run again, so an interrupted sweep goes on where it stopped; a point whose run fails (a loss that
diverged) is recorded with the error's last line and counts as no result.

`--quick` sweeps the smoke ladder for a few steps in a tiny repository made on the spot, on a
corpus of 12 small videos.

Run: python benchmarks/pretrain_sweep.py --repo CLONE --name lr_sweep
         --grid pretrain.lr=0.0003,0.001,0.003,0.01 --grid pretrain.seed=0,1 [--set ladder=...]
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import matplotlib
import torch

from fourds import layout
from fourds.config import load_params

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

QUICK_CORPUS = "data-quick"
QUICK_SET = (
    "ladder=smoke",
    f"curate.data={QUICK_CORPUS}",
    "pretrain.steps=4",
    "pretrain.warmup_steps=1",
    "pretrain.log_every=1",
    "pretrain.checkpoint_every=0",
    "pretrain.heldout_every=2",
    "pretrain.heldout_clips=4",
)


def grid_points(grid: list[str]) -> list[tuple[tuple[str, str], ...]]:
    """'key=a,b' entries -> every combination, as ((key, value), ...) in the entries' order."""
    axes = []
    for entry in grid:
        key, _, values = entry.partition("=")
        axes.append([(key, value) for value in values.split(",")])
    return list(itertools.product(*axes))


def point_name(name: str, point: tuple[tuple[str, str], ...]) -> str:
    """The experiment's name: `<name>-<key's last part>-<value>-...` (DVC's name rules)."""
    parts = [name] + [f"{key.split('.')[-1]}-{value}" for key, value in point]
    return "-".join(parts).replace(".", "p").replace("_", "-")


def dvc(repo: Path, *command: str) -> subprocess.CompletedProcess:
    """`dvc <command>` in `repo`, with the repository's own src/ first on the path."""
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    return subprocess.run(["dvc", *command], cwd=repo, env=env, capture_output=True, text=True)


def experiment_file(repo: Path, name: str, path: str) -> str:
    """The text of `path` in experiment `name`'s commit (DVC keeps it under refs/exps/)."""
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/exps/"],
        cwd=repo, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    (ref,) = [ref for ref in refs if ref.endswith(f"/{name}")]
    return subprocess.run(
        ["git", "show", f"{ref}:{path}"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def read_scale(repo: Path, name: str, scale: str) -> dict:
    """A pretrain stage's metrics and held-out curve [[step, train_flops, heldout_loss], ...]
    in experiment `name`."""
    run_dir = f"runs/pretrain/{scale}"
    metrics = json.loads(experiment_file(repo, name, f"{run_dir}/metrics.json"))
    rows = csv.DictReader(experiment_file(repo, name, f"{run_dir}/heldout.csv").splitlines())
    curve = [[int(r["step"]), float(r["train_flops"]), float(r["heldout_loss"])] for r in rows]
    return {**metrics, "heldout_curve": curve}


def run_point(repo: Path, name: str, overrides: list[str], scales: list[str]) -> dict:
    """One experiment: its status and, when it ran, every scale's results."""
    sets = [arg for item in overrides for arg in ("-S", item)]
    command = ["exp", "run", "--temp", "-n", name, *sets]
    started = time.perf_counter()
    done = dvc(repo, *command, *[layout.pretrain(scale).name for scale in scales])
    seconds = round(time.perf_counter() - started, 1)
    if done.returncode:
        lines = (done.stdout + done.stderr).splitlines()
        errors = [line for line in lines if "error" in line.lower()] or lines or [""]
        return {"status": "failed", "error": errors[0].strip(), "seconds": seconds}
    return {
        "status": "ok",
        "seconds": seconds,
        "scales": {scale: read_scale(repo, name, scale) for scale in scales},
    }


def numeric(values: list[str]) -> bool:
    """Whether every value reads as a number (a log axis), not a name (one place each)."""
    try:
        [float(value) for value in values]
    except ValueError:
        return False
    return True


def summary(points: dict, scales: list[str], axis: str) -> dict:
    """Per scale and value of `axis`: the final held-out losses of its points (one per value of
    the other keys, the seeds), their mean and spread (max - min), and per scale the numeric
    value of lowest mean among those every point of which ran. Per value of `axis`, whether the
    loss falls with scale on every seed, and the mean loss of the largest scale below the
    smallest's (`margin`, relative) against the seeds' largest spread at one scale."""
    table: dict[str, dict[str, dict]] = {scale: {} for scale in scales}
    for point in points.values():
        value = point["overrides"][axis]
        for scale in scales:
            entry = table[scale].setdefault(value, {"heldout_losses": [], "failed": 0})
            if point["status"] == "ok":
                entry["heldout_losses"].append(point["scales"][scale]["heldout_loss"])
            else:
                entry["failed"] += 1
    best = dict.fromkeys(scales)
    for scale, values in table.items():
        for entry in values.values():
            losses = entry["heldout_losses"]
            entry["mean"] = statistics.fmean(losses) if losses else None
            entry["spread"] = max(losses) - min(losses) if len(losses) > 1 else None
        complete = {v: e["mean"] for v, e in values.items() if e["mean"] and not e["failed"]}
        best[scale] = (
            min(complete, key=complete.get) if complete and numeric(list(complete)) else None
        )
    return {"by_scale": table, "best": best, "with_scale": with_scale(points, scales, axis)}


def with_scale(points: dict, scales: list[str], axis: str) -> dict:
    """Per value of `axis` (module docstring of `summary`)."""
    found = {}
    for value in dict.fromkeys(point["overrides"][axis] for point in points.values()):
        ran = [p for p in points.values() if p["overrides"][axis] == value and p["status"] == "ok"]
        if not ran:
            continue
        per_point = [[p["scales"][scale]["heldout_loss"] for scale in scales] for p in ran]
        falls = [all(b < a for a, b in zip(row, row[1:], strict=False)) for row in per_point]
        means = [statistics.fmean(column) for column in zip(*per_point, strict=True)]
        spreads = [max(column) - min(column) for column in zip(*per_point, strict=True)]
        found[value] = {
            "falls_on_every_point": all(falls),
            "points": len(ran),
            "margin": (means[0] - means[-1]) / means[0],
            "largest_minus_smallest": means[0] - means[-1],
            "largest_spread": max(spreads),
        }
    return found


def plot(table: dict, axis: str, path: Path) -> None:
    """Final held-out loss against `axis` (log when numeric), a line per scale through its
    means, a dot per point."""
    figure, ax = plt.subplots(figsize=(5.5, 3.8))
    for scale, values in table["by_scale"].items():
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
    partial = path.with_name(f".{path.stem}.partial.png")
    figure.savefig(partial, dpi=120)
    os.replace(partial, path)


def quick_repo(root: Path) -> Path:
    """A tiny repository: this one's tracked files but the default's lock (which DVC would parse
    at every stage), with a corpus of 12 small videos rendered here (QUICK_CORPUS, `dvc add`ed)."""
    repo = root / "repo"
    subprocess.run(["git", "clone", "-q", str(harness.REPO), str(repo)], check=True)
    shutil.rmtree(repo / "dvc-store")
    synth = [sys.executable, "-m", "fourds.cli", "synth", "--out", QUICK_CORPUS, "--size", "32"]
    synth += ["--videos", "pretrain=4", "readout-train=4", "readout-test=4"]
    steps = [synth, ["dvc", "add", "-q", QUICK_CORPUS], ["git", "rm", "-q", "dvc.lock"]]
    steps.append(["git", "add", "-A"])
    steps.append(["git", "-c", "user.name=fourds", "-c", "user.email=fourds@invalid", "commit",
                  "-qm", "a tiny corpus, no lock"])  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    for step in steps:
        done = subprocess.run(step, cwd=repo, env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(step)} failed: {done.stderr[-1000:]}")
    return repo


def main() -> None:
    started = time.perf_counter()
    args = harness.parse_args(__doc__.splitlines()[0], add_arguments)
    with tempfile.TemporaryDirectory() as scratch:
        repo = quick_repo(Path(scratch)) if args.quick else args.repo.resolve()
        overrides = [*(QUICK_SET if args.quick else ()), *args.set]
        grid = args.grid or ["pretrain.lr=0.001"]
        composed = Path(scratch) / "params.yaml"
        subprocess.run(
            [sys.executable, "-m", "fourds.cli", "params", *overrides, "--out", str(composed),
             "--experiments", str(repo / "experiments")],
            check=True, capture_output=True,
        )  # fmt: skip
        scales = list(load_params(composed).ladder.scales)
        path = args.out / f"{args.name}.json"
        points = json.loads(path.read_text())["results"]["points"] if path.is_file() else {}
        config = {"repo": str(args.repo), "set": overrides, "grid": grid, "scales": scales}
        axis = grid[0].partition("=")[0]
        for point in grid_points(grid):
            name = point_name(args.name, point)
            if name in points:
                continue
            items = [f"{key}={value}" for key, value in point]
            print(f"{name}: dvc exp run -S {' -S '.join(overrides + items)}", flush=True)
            points[name] = {
                "overrides": dict(point),
                **run_point(repo, name, overrides + items, scales),
            }
            write(args, points, config, scales, axis, started)
        write(args, points, config, scales, axis, started)


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
    partial = path.with_name(f".{path.stem}.partial.png")
    figure.savefig(partial, dpi=110)
    os.replace(partial, path)


def write(args, points: dict, config: dict, scales: list[str], axis: str, started: float) -> None:
    """The sweep so far, its summary and its figures (final losses; curves), under args.out."""
    results = {"points": points, **summary(points, scales, axis)}
    harness.write_result(args.name, args.out, torch.device("cpu"), config, results, started)
    plot(results, axis, args.out / f"{args.name}.png")
    plot_curves(points, scales, axis, args.out / f"{args.name}_curves.png")


def add_arguments(parser) -> None:
    parser.add_argument("--repo", type=Path, default=None, help="a clone that ran the main job")
    parser.add_argument("--name", default="pretrain_sweep", help="the sweep's name")
    parser.add_argument(
        "--grid", action="append", default=[], help="key=v1,v2,... (repeatable; the first: x)"
    )
    parser.add_argument(
        "--set", action="append", default=[], help="a fixed override, e.g. ladder=reference"
    )


if __name__ == "__main__":
    main()
