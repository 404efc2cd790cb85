"""A pretraining sweep as DVC experiments: every scale's held-out loss over a grid of params.

Each point of the grid (every combination of the `--grid` values, on top of the `--set`
overrides) is one `dvc exp run --temp` of the ladder's pretrain stages in the repository, which
has run the main job (so that curate comes from DVC's cache), named `<name>-<k1>-<v1>-...` so
that `dvc exp show` lists it there; it runs outside the workspace, which it leaves as it is.
After each point, every scale's metrics and held-out curve (fourds.train.heldout) are read from
the experiment's commit and the whole sweep so far is written to `<out>/<name>.json`, with its
figures (fourds.pipeline.sweep_figures). A point already in the file is not run again, so an
interrupted sweep goes on where it stopped; a point whose run fails (a loss that diverged) is
recorded with the error's last line and counts as no result.

Run (in the repository): fourds sweep --name lr_sweep --grid pretrain.lr=0.0003,0.001,0.003
    --grid pretrain.seed=0,1 [--set ladder=reference]
"""

from __future__ import annotations

import csv
import datetime
import itertools
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from fourds import layout
from fourds.atomic import write_json
from fourds.config.compose import compose_params
from fourds.config.load import checked
from fourds.errors import ConfigError
from fourds.pipeline.sweep_figures import numeric, plot_curves, plot_losses
from fourds.records import git_commit, machine_record

Point = tuple[tuple[str, str], ...]  # ((key, value), ...) in the grid's order


def grid_points(grid: list[str]) -> list[Point]:
    """'key=a,b' entries -> every combination, as ((key, value), ...) in the entries' order.

    Raises:
        ConfigError: an entry is not key=value[,value...].
    """
    axes = []
    for entry in grid:
        key, equals, values = entry.partition("=")
        if not key or not equals or not all(values.split(",")):
            raise ConfigError(f"--grid {entry!r}: expected key=value[,value...]")
        axes.append([(key, value) for value in values.split(",")])
    return list(itertools.product(*axes))


def point_name(name: str, point: Point) -> str:
    """The experiment's name: `<name>-<key's last part>-<value>-...` (DVC's name rules)."""
    parts = [name] + [f"{key.split('.')[-1]}-{value}" for key, value in point]
    return "-".join(parts).replace(".", "p").replace("_", "-")


def dvc(repo: Path, *command: str) -> subprocess.CompletedProcess:
    """`dvc <command>` in `repo`, with the repository's own src/ first on the path."""
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    return subprocess.run(["dvc", *command], cwd=repo, env=env, capture_output=True, text=True)


def experiment_ref(repo: Path, name: str) -> str:
    """The git ref of experiment `name`'s commit (DVC keeps it under refs/exps/)."""
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/exps/"],
        cwd=repo, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    (ref,) = [ref for ref in refs if ref.endswith(f"/{name}")]
    return ref


def read_scale(repo: Path, ref: str, scale: str) -> dict:
    """A pretrain stage's metrics and held-out curve [[step, train_flops, heldout_loss], ...]
    in the commit `ref`."""
    run_dir = (layout.RUNS / layout.pretrain(scale).folder).as_posix()

    def text(file: str) -> str:
        return subprocess.run(
            ["git", "show", f"{ref}:{run_dir}/{file}"],
            cwd=repo, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip

    metrics = json.loads(text("metrics.json"))
    rows = csv.DictReader(text("heldout.csv").splitlines())
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
    ref = experiment_ref(repo, name)
    return {
        "status": "ok",
        "seconds": seconds,
        "scales": {scale: read_scale(repo, ref, scale) for scale in scales},
    }


def summary(points: dict, scales: list[str], axis: str) -> dict:
    """Per scale and value of `axis`: the final held-out losses of its points (one per value of
    the other keys, the seeds), their mean and spread (max - min), and per scale the numeric
    value of lowest mean among those every point of which ran; per value of `axis`,
    `with_scale`."""
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
    """Per value of `axis`: whether the loss falls with scale on every point that ran (seed),
    the mean loss of the largest scale below the smallest's (`margin`, relative; and absolute),
    and the seeds' largest spread at one scale, to read the margin against."""
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


def ladder_scales(repo: Path, overrides: list[str]) -> list[str]:
    """The scales of the ladder the overrides compose in `repo` (its experiments/).

    Raises:
        ConfigError: the overrides do not compose to valid params.
    """
    return list(checked(compose_params(overrides, repo / "experiments")).ladder.scales)


def earlier_points(path: Path) -> dict:
    """The points a sweep's file `path` holds (none where there is no file yet).

    Raises:
        ConfigError: `path` is a file but no sweep's (it is left as it is).
    """
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())["results"]["points"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(
            f"{path} is not a sweep's file: name the sweep otherwise or write it elsewhere "
            "(--name, --out)"
        ) from None


def sweep(repo: Path, name: str, grid: list[str], overrides: list[str], out: Path) -> Path:
    """Run every point of `grid` not yet in `<out>/<name>.json` (module docstring), the file and
    its figures written after each; returns the file."""
    started = time.perf_counter()
    points_of_grid = grid_points(grid or ["pretrain.lr=0.001"])
    scales = ladder_scales(repo, overrides)
    path = out / f"{name}.json"
    points = earlier_points(path)
    axis = points_of_grid[0][0][0]
    config = {"repo": str(repo), "set": overrides, "grid": grid, "scales": scales}
    record = {
        "sweep": name,
        "command": shlex.join(["fourds", *sys.argv[1:]]),
        "repository_commit": git_commit(repo),
        "machine": machine_record(torch_ran=True),  # the experiments' stages, on this machine
        "config": config,
    }

    def write() -> None:
        results = {"points": points, **summary(points, scales, axis)}
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        seconds = round(time.perf_counter() - started, 1)
        write_json(path, {**record, "date": now, "results": results, "wall_seconds": seconds})
        plot_losses(results, axis, out / f"{name}.png")
        plot_curves(points, scales, axis, out / f"{name}_curves.png")

    out.mkdir(parents=True, exist_ok=True)
    for point in points_of_grid:
        experiment = point_name(name, point)
        if experiment in points:
            continue
        items = [f"{key}={value}" for key, value in point]
        print(f"{experiment}: dvc exp run -S {' -S '.join(overrides + items)}", flush=True)
        points[experiment] = {
            "overrides": dict(point),
            **run_point(repo, experiment, overrides + items, scales),
        }
        write()
    write()
    return path
