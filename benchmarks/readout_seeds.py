"""Readout seeds one after another, side by side and batched: each task of a study's readout
stage of one scale and regime, read out alone three times by the stage itself (`fourds readout
--task`) in this process, its seeds trained one after another in the stage at the stage's
threads (the code before issue 57's change), side by side, a forked process each (as the stage
trains them on a CPU), and as one batched model (fourds.evaluate.batched_seeds, as the stage
trains them on a GPU).

Per task it records each run's seconds by part (encode, train, score: the task's under `tasks`
in the stage's execution record), each way's training time over one after another's, and the
largest relative difference from one after another of a seed's headline and final training
loss (one thread's rounding against the stage's threads, or the batched kernels'). The study's
stage outputs are read where `dvc repro` writes them (runs/curate/shards and
runs/pretrain/<scale> under --study, with its params.yaml); `--quick` reads out a tiny
untrained encoder on a tiny corpus for a few steps instead, on depth and tracking unless
--tasks names others. It times: run it alone.

Run: python benchmarks/readout_seeds.py [--quick] [--study DIR] [--scale cpu_s] [--tasks depth]
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import harness
import setups
import torch
import yaml

from fourds import layout
from fourds.cli import main as fourds
from fourds.config import load_params
from fourds.evaluate import readout_seeds
from fourds.records import EXECUTION_RECORD

NAME = "readout_seeds"
WAYS = readout_seeds.SEED_TRAININGS  # one_after_another (the reference), side_by_side, batched


def read_out(study: Path, params: Path, scale: str, task: str, regime: str, way: str,
             out: Path) -> dict:  # fmt: skip
    """The readout stage of (scale, regime) run on `task` alone, its seeds trained `way`: the
    task's metrics (fourds.layout.ReadoutFiles) and its seconds by part from the stage's
    execution record (`tasks`: the task's seconds, encode, train and score)."""
    training = readout_seeds.seed_training
    readout_seeds.seed_training = lambda spec, device: way
    runs = study / layout.RUNS
    command = ["readout", "--params", str(params), "--scale", scale, "--task", task,
               "--regime", regime, "--curated", str(runs / layout.curate().folder / "shards"),
               "--pretrained", str(runs / layout.pretrain(scale).folder),
               "--out", str(out)]  # fmt: skip
    try:
        if fourds(command) != 0:
            raise RuntimeError(f"fourds {' '.join(command)} failed")
    finally:
        readout_seeds.seed_training = training
    execution = yaml.safe_load((out / EXECUTION_RECORD).read_text())["tasks"][task]
    parts = {key: value for key, value in execution.items() if key.endswith("seconds")}
    metrics = json.loads(layout.ReadoutFiles.inside(out, task).metrics.read_text())
    return {"metrics": metrics, "seconds": parts}


def largest_relative_difference(first: list[float], second: list[float]) -> float:
    """max |a - b| / max(|a|, |b|) over pairs of numbers (0 where both are 0)."""
    return max(
        (abs(a - b) / max(abs(a), abs(b)) if a != b else 0.0)
        for a, b in zip(first, second, strict=True)
    )


def compare(runs: dict[str, dict]) -> dict:
    """Every way's seconds by part, its training time over one after another's, and how far its
    seeds end from one after another's."""
    reference = runs["one_after_another"]
    train = {way: runs[way]["seconds"]["train_seconds"] for way in WAYS}

    def seeds(metrics: dict, key: str, alone: str) -> list[float]:
        return metrics.get(key, [metrics[alone]])

    return {
        "seconds": {way: runs[way]["seconds"] for way in WAYS},
        "train_over_one_after_another": {
            way: round(train[way] / train["one_after_another"], 3) for way in WAYS[1:]
        },
        "seed_headline_difference": {
            way: largest_relative_difference(
                seeds(reference["metrics"], "seed_headlines", reference["metrics"]["headline"]),
                seeds(runs[way]["metrics"], "seed_headlines", runs[way]["metrics"]["headline"]),
            )
            for way in WAYS[1:]
        },
        "final_train_loss_difference": {
            way: largest_relative_difference(
                seeds(reference["metrics"], "final_train_losses", "final_train_loss"),
                seeds(runs[way]["metrics"], "final_train_losses", "final_train_loss"),
            )
            for way in WAYS[1:]
        },
    }


def main() -> None:
    started = time.perf_counter()
    args = harness.parse_args(__doc__.splitlines()[0], add_arguments)
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        if args.quick:
            study, params, scale = setups.quick_study(scratch / "study")
        else:
            study, params, scale = args.study.resolve(), args.study / "params.yaml", args.scale
        loaded = load_params(params)
        tasks = setups.chosen_tasks(args.tasks, args.quick, loaded.readout.tasks)
        results, totals = {}, dict.fromkeys(WAYS, 0.0)
        for task in tasks:
            runs = {
                way: read_out(
                    study, params, scale, task, args.regime, way, scratch / f"{task}-{way}"
                )  # fmt: skip
                for way in WAYS
            }
            results[task] = compare(runs)
            for way in WAYS:
                totals[way] += runs[way]["seconds"]["train_seconds"]
            print(f"{task}: {results[task]}", flush=True)
        results["train_seconds"] = {way: round(seconds, 2) for way, seconds in totals.items()}
    config = {
        "study": "quick" if args.quick else str(args.study),
        "scale": scale,
        "regime": args.regime,
        "tasks": tasks,
        "seeds": {task: loaded.readouts[task].seeds for task in tasks},
        "threads": loaded.runtime.threads,
        "order": "per task: one after another, side by side, batched",
    }
    harness.write_result(NAME, args.out, torch.device("cpu"), config, results, started)


def add_arguments(parser) -> None:
    setups.add_study_argument(parser)
    parser.add_argument("--scale", default="cpu_s", help="the scale read out (default: cpu_s)")
    parser.add_argument("--regime", default="frozen", help="the regime (default: frozen)")
    setups.add_tasks_argument(parser)


if __name__ == "__main__":
    main()
