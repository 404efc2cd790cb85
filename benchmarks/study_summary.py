"""What a study run by benchmarks/gpu_study.sh returns: summary.json and the shipped results.

Reads the study's repository (its params, dvc.lock, every stage's metrics.json and
execution.yaml, the shipped folder reports/<ladder>-reference) and writes into OUT:

    summary.json                  the device, the commit the study ran from, wall time of the
                                  corpus rendering, of `dvc repro` and of every stage, the
                                  pretrain stage's clips/s beside world_rate.json's (when there),
                                  each scale's pretraining FLOPs and clips (every one rendered
                                  from its own key: none seen twice), the checkpoints' md5
                                  (from dvc.lock: weights stay behind)
    <ladder>-study.tar.gz         the study's params.yaml, dvc.lock, world.dvc, runs/,
                                  reports/out and the shipped reports/<ladder>-reference, weights
                                  and caches left out (RETURNED, LEFT_BEHIND): enough to build
                                  the report where the report stage did not run

Run: python benchmarks/study_summary.py WORK TIMES OUT [--started EPOCH]
"""

from __future__ import annotations

import argparse
import json
import tarfile
import time
from pathlib import Path

import harness
import torch
import yaml

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
    """Stage name (its output folder under runs/) -> its execution.yaml."""
    return {
        path.parent.relative_to(work / "runs").as_posix(): yaml.safe_load(path.read_text())
        for path in sorted((work / "runs").glob("*/*/execution.yaml"))
        + sorted((work / "runs").glob("curate/execution.yaml"))
    }


def checkpoint_md5(work: Path) -> dict[str, str]:
    """runs/pretrain/<scale>/checkpoint.pt -> its md5 as dvc.lock records it."""
    lock = yaml.safe_load((work / "dvc.lock").read_text())
    digests = {}
    for stage in lock["stages"].values():
        for output in stage.get("outs", []):
            if output["path"].endswith("checkpoint.pt"):
                digests[output["path"]] = output["md5"]
    return digests


def pretraining(work: Path, params: dict) -> dict[str, dict]:
    """Per scale: parameters, final loss, FLOPs and the clips it trained on."""
    cfg = params["pretrain"]
    scales = {}
    for scale in params["ladder"]["scales"]:
        metrics = json.loads((work / "runs/pretrain" / scale / "metrics.json").read_text())
        scales[scale] = {
            "params": metrics["params"],
            "loss": metrics["loss"],
            "pretrain_flops": metrics["pretrain_flops"],
            "clips": cfg["steps"] * cfg["batch_size"],
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
    args = parser.parse_args()
    params = yaml.safe_load((args.work / "params.yaml").read_text())
    ladder = params["ladder"]["name"]
    times = dict(line.split("=") for line in args.times.read_text().split())
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    summary = {
        "ladder": ladder,
        "wall_seconds": round(time.time() - args.started, 1),
        "synth_seconds": int(times.get("synth_seconds", 0)),
        "repro_seconds": int(times.get("repro_seconds", 0)),
        "stages": stage_records(args.work),
        "pretraining": pretraining(args.work, params),
        "checkpoint_md5": checkpoint_md5(args.work),
    }
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
