"""Readout feature caching: training a frozen-encoder readout on cached vs recomputed features.

The readout stage in the frozen regime with `readout.cache_features` runs the encoder once per
training clip and trains on the stored features; without it the encoder runs on every batch.
Both variants train the same depth readout (the embedded ladder's settings: width 128, 4 heads,
batch 16) for the same number of steps on the same clips and give the same readout (tested in
tests/evaluate/test_readout_stage.py); this measures the wall time of the whole training,
feature extraction included, for the embedded ladder's largest encoder (cpu_l) on 64 clips of
8x64x64.

Run: python benchmarks/readout_caching.py [--quick]
"""

from __future__ import annotations

import dataclasses
import time

import harness
import numpy as np
import setups
import torch

from fourds.config import PretrainSpec, ReadoutSpec
from fourds.evaluate.readout import Features, train_readout, training_optimizer
from fourds.evaluate.tasks import ClipGeometry, TaskContext, make_task
from fourds.models.factory import build_encoder
from fourds.models.readout import AttentionReadout, readout_block_count

NAME = "readout_caching"


def training(
    shape: setups.Shape, params, clips: np.ndarray, depth: np.ndarray, cache: bool, device
):
    """A function that trains a fresh depth readout on `clips` with or without caching."""
    torch.manual_seed(0)
    encoder = build_encoder(shape.model, shape.frames, shape.size).to(device).eval()
    encoder.requires_grad_(False)
    geometry = ClipGeometry(shape.model.tubelet, encoder.grid, shape.frames, shape.size)
    task_cfg = params.readouts["depth"]
    task = make_task("depth", geometry, TaskContext(task_cfg.options))
    pretraining = PretrainSpec(
        shape.name, shape.model, params.mae, params.curate, params.pretrain, "sdpa"
    )
    spec = ReadoutSpec("depth", "frozen", params.readout, task_cfg, pretraining)
    blocks = readout_block_count(shape.model.depth, params.readout.readout_depth)
    targets = task.targets({"depth": depth})

    def run() -> None:
        features = Features(encoder, clips, blocks, device, cache, task_cfg.batch_size)
        readout = AttentionReadout(
            shape.model.width, encoder.grid, shape.frames, task_cfg.width, task_cfg.heads,
            task.num_queries, task.query_dim, task.out_dim,
        ).to(device)  # fmt: skip
        optimizer = training_optimizer(readout, encoder, spec)
        train_readout(
            readout, optimizer, task, features, targets, spec, device, params.readout.seed
        )

    return run


def main() -> None:
    started = time.perf_counter()
    args = harness.parse_args(__doc__.splitlines()[0])
    device = harness.default_device()
    params = setups.compose_ladder()
    if args.quick:
        shape, count, steps = setups.TINY, 8, 4
    else:
        shape, count, steps = setups.ladder_shape(params, "cpu_l"), 64, 100
    depth_cfg = dataclasses.replace(params.readouts["depth"], steps=steps)
    params = dataclasses.replace(params, readouts={**params.readouts, "depth": depth_cfg})
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, (count, shape.frames, shape.size, shape.size, 3), dtype=np.uint8)
    depth = rng.uniform(1, 10, (count, shape.frames, shape.size, shape.size)).astype(np.float32)
    variants = {
        name: training(shape, params, clips, depth, cache, device)
        for name, cache in (("cached", True), ("recomputed", False))
    }
    timings = harness.time_interleaved(variants, device, warmup=0, repeats=1 if args.quick else 2)
    speedup = timings.median("recomputed") / timings.median("cached")
    print(f"readout training: cached features {speedup:.1f}x faster", flush=True)
    results = {
        "training_time": {name: timings.summary(name) for name in variants},
        "speedup": round(speedup, 2),
    }
    config = {
        "quick": args.quick,
        "shape": shape.describe(),
        "task": "depth",
        "readout": dataclasses.asdict(depth_cfg),
        "readout_block": readout_block_count(shape.model.depth, params.readout.readout_depth),
        "training_clips": count,
        "work": "feature extraction (once when cached) + readout training steps",
        "order": "interleaved: cached, recomputed, cached, ...",
    }
    harness.write_result(NAME, args.out, device, config, results, started)


if __name__ == "__main__":
    main()
