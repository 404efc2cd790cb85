"""What a study run by benchmarks/gpu_study.sh returns: summary.json and the shipped results.

Reads the study's repository (its params, dvc.lock, the pretrain stages' metrics.json, every
stage's execution.yaml, the shipped folder reports/<ladder>-reference) and writes into OUT:

    summary.json                  the device, the commit the study ran from, wall time of the
                                  corpus rendering, of `dvc repro` and of every stage (a readout
                                  stage, readout/<scale>-<regime>, with its record's seconds of
                                  each task under `tasks`), the
                                  pretrain stage's clips/s (overall and once compiled) beside
                                  world_rate.json's (when there), the
                                  fanned-out stages' (parallel_repro.json) jobs and seconds,
                                  each scale's pretraining FLOPs and clips (every one rendered
                                  from its own key: none seen twice), the checkpoints' md5
                                  (from dvc.lock: weights stay behind)
    <ladder>-study.tar.gz         the study's params.yaml, dvc.lock, world.dvc, runs/,
                                  reports/out and the shipped reports/<ladder>-reference, weights
                                  and caches left out (RETURNED, LEFT_BEHIND): enough to build
                                  the report where the report stage did not run

Run: python benchmarks/study_summary.py WORK TIMES OUT [--started EPOCH] [--parallel JSON]
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import statistics
import tarfile
import time
from pathlib import Path

import harness
import torch
import yaml

from fourds import layout
from fourds.records import EXECUTION_RECORD

RETURNED = (
    "params.yaml",
    "dvc.lock",
    "world.dvc",
    "runs",
    "reports/out",
    "reports/{ladder}-reference",
)
# weights (their md5s are in dvc.lock), curated shards, resumable checkpoints, DVCLive's files
LEFT_BEHIND = ("checkpoint.pt", "/checkpoints", "/shards", "/resume", "/live", "/slurm")


def returned(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """`info` unless it is left behind."""
    return None if any(part in info.name for part in LEFT_BEHIND) else info


def stage_records(work: Path) -> dict[str, dict]:
    """Stage name (its output folder under runs/, fourds.layout's Stage.folder) -> its
    execution.yaml (a readout stage's holds the stage's seconds and each task's under
    `tasks`)."""
    runs = work / layout.RUNS
    records = sorted(runs.glob(f"*/*/{EXECUTION_RECORD}"))
    records += sorted(runs.glob(f"{layout.curate().folder.as_posix()}/{EXECUTION_RECORD}"))
    return {
        path.parent.relative_to(runs).as_posix(): yaml.safe_load(path.read_text())
        for path in records
    }


def add_stage_walls(records: dict[str, dict]) -> None:
    """Give each stage record `wall_seconds`: the time from the stage that finished before it
    to its own end (the whole process: start-up, compilation, writing; a second's resolution);
    the first stage to finish gets none."""
    finished = sorted(
        (datetime.datetime.strptime(record["finished_at"], "%Y-%m-%dT%H:%M:%S%z"), name)
        for name, record in records.items()
    )
    for (before, _), (after, name) in itertools.pairwise(finished):
        records[name]["wall_seconds"] = (after - before).total_seconds()


def add_parallel_walls(records: dict[str, dict], parallel: dict) -> None:
    """The stages `fourds repro-parallel` ran (its `parallel`: parallel_repro.json) take
    their wall seconds from it: their `dvc repro` in a worker, start to end."""
    for record in records.values():
        if record.get("stage") in parallel["stages"]:
            record["wall_seconds"] = parallel["stages"][record["stage"]]["seconds"]


def steady_clips_per_second(work: Path, scale: str) -> float | None:
    """The pretrain stage's clips/s once compiled: the median over DVCLive's logging windows
    but the first (which holds the compilation); None without them."""
    live = work / layout.RUNS / layout.pretrain(scale).folder / "live"
    path = live / "plots/metrics/perf/clips_per_second.tsv"
    if not path.is_file():
        return None
    rows = path.read_text().split("\n")[1:]
    windows = [float(row.split("\t")[1]) for row in rows if row.strip()]
    return round(statistics.median(windows[1:]), 1) if len(windows) > 1 else None


def checkpoint_md5(work: Path) -> dict[str, str]:
    """runs/pretrain/<scale>/checkpoint.pt -> its md5 as dvc.lock records it."""
    lock_path = work / "dvc.lock"
    lock = yaml.safe_load(lock_path.read_text()) if lock_path.is_file() else {"stages": {}}
    digests = {}
    for stage in lock["stages"].values():
        for output in stage.get("outs", []):
            if output["path"].endswith("checkpoint.pt"):
                digests[output["path"]] = output["md5"]
    return digests


def pretraining(work: Path, params: dict) -> dict[str, dict]:
    """Per scale that finished: parameters, final loss, FLOPs, the clips it trained on and its
    steady clips/s."""
    cfg = params["pretrain"]
    scales = {}
    for scale in params["ladder"]["scales"]:
        path = work / layout.RUNS / layout.pretrain(scale).folder / "metrics.json"
        if not path.is_file():  # a study cut short
            continue
        metrics = json.loads(path.read_text())
        scales[scale] = {
            "params": metrics["params"],
            "loss": metrics["loss"],
            "pretrain_flops": metrics["pretrain_flops"],
            "clips": cfg["steps"] * cfg["batch_size"],
            "steady_clips_per_second": steady_clips_per_second(work, scale),
            # world clips are rendered from keys (seed, step, row), each step's rows distinct
            "max_times_a_clip_was_seen": 1 if cfg["source"] == "world" else None,
        }
    return scales


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("times", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--started", type=float, default=time.time())
    parser.add_argument("--parallel", type=Path, help="parallel_repro.json of fanned-out stages")
    args = parser.parse_args()
    params = yaml.safe_load((args.work / "params.yaml").read_text())
    ladder = params["ladder"]["name"]
    recorded = args.times.read_text() if args.times.is_file() else ""
    times = dict(line.split("=") for line in recorded.split())
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    stages = stage_records(args.work)
    add_stage_walls(stages)
    parallel = None
    if args.parallel and args.parallel.is_file():
        parallel = json.loads(args.parallel.read_text())
        add_parallel_walls(stages, parallel)
    summary = {
        "ladder": ladder,
        "wall_seconds": round(time.time() - args.started, 1),
        "synth_seconds": int(times.get("synth_seconds", 0)),
        "repro_seconds": int(times.get("repro_seconds", 0)),
        "stages": stages,
        "pretraining": pretraining(args.work, params),
        "checkpoint_md5": checkpoint_md5(args.work),
    }
    if parallel:
        summary["parallel"] = {k: parallel[k] for k in ("jobs", "setup_seconds", "wall_seconds")}
    rate = args.out / "world_rate.json"
    if rate.is_file():
        summary["world_rate"] = json.loads(rate.read_text())["results"]
    harness.write_result("summary", args.out, device, {"ladder": ladder}, summary, args.started)
    with tarfile.open(args.out / f"{ladder}-study.tar.gz", "w:gz") as archive:
        for name in (name.format(ladder=ladder) for name in RETURNED):
            if (args.work / name).exists():
                archive.add(args.work / name, arcname=name, filter=returned)


if __name__ == "__main__":
    main()
