"""Pretraining loader throughput: clips/s delivered per worker (CPU core) at the 4ds clip size.

Synthetic segments (uniform random uint8, so nothing compresses or repeats) are written as
temporary pretrain shards of the real format (`fourds.data.shards.ShardWriter`), 64 frames of
224x224 each, and read back as the pretrain stage reads them: memory-mapped
(`fourds.data.segments.SegmentStore`), a window of 16 frames at stride 4 with the view (crop box
and flip) of the 4ds ladder's random resized crop (`ClipSampler`), random masks at the 4ds mask
ratio (`MaskedAutoencoder.sample_masks` of 4ds_b), batched and prefetched by `pretrain_loader`
on the CPU (no pinning). Params come from `fourds params ladder=4ds` (the 4ds ladder curates
128-frame segments; 64 keep the temporary shards small and still hold a 61-frame window).

Variants, run in turns (A, B, A, B, ...): the loader with 1 and with 2 worker threads, each
draining `batches` batches of `batch` clips from a fresh loader as fast as it can. Wall-clock
clips/s are recorded, and the figure `fourds plan` uses is clips per CPU-second of the whole
loader (`time.process_time`: the worker threads, the batching thread, which stacks each batch
into a fresh tensor, and the prefetcher), so it is the cost per core whatever the threads.
The shards were just written, so reads come from the page cache: this is the CPU cost of
making clips, not disk or network bandwidth.

The crop, resize and flip run in the training step on the model's device
(`crop_resize_flip`); `device_augment` times it on one batch on the benchmark's device (CUDA
when there is one, else the CPU, where it is what a CPU run's step pays per clip). With CUDA,
`feed_to_gpu` also times the whole feed as the pretraining loop runs it: two worker threads,
batches in pinned memory copied asynchronously, the views applied on the GPU.

Run: python benchmarks/loader_throughput.py [--quick]
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

import harness
import numpy as np
import setups
import torch

from fourds.data.augment import ClipSampler, crop_resize_flip
from fourds.data.segments import SegmentStore
from fourds.data.shards import ShardWriter
from fourds.models.factory import build_mae
from fourds.train.loader import (
    ClipExample,
    Slot,
    collate,
    joined_loader_threads,
    on_compute_stream,
    pretrain_loader,
)

SCALE = "4ds_b"  # whose masks are drawn (1568 tokens); the clip is the ladder's
WORKERS = (1, 2)


def write_shards(shard_dir: Path, segments: int, frames: int, size: int, per_shard: int) -> None:
    """`segments` random uint8 segments [frames, size, size, 3] as pretrain shards."""
    rng = np.random.default_rng(0)
    writer = ShardWriter(shard_dir, "pretrain", per_shard)
    for _ in range(segments):
        writer.add({"video": rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)})
    writer.flush()


def drain(example: ClipExample, workers: int, batches: int, batch: int, cpu: list[float]) -> None:
    """Take every batch of a fresh loader with `workers` worker threads; append the CPU seconds
    the process spent (every thread: workers, batching, prefetching) to `cpu`."""
    started = time.process_time()
    loader = pretrain_loader(example, batches, range(batch), workers, prefetch=2)
    for _ in loader:
        pass
    cpu.append(time.process_time() - started)


def feed(example: ClipExample, batches: int, batch: int, device: torch.device) -> None:
    """What the pretraining loop does with a fresh loader's batches: pinned batches from two
    worker threads, copied to `device` ahead on the loader's stream, the views applied there."""
    loader = pretrain_loader(example, batches, range(batch), 2, prefetch=2, device=device)
    for examples in loader:
        examples = on_compute_stream(examples)
        crop_resize_flip(examples["video"], examples["view"])


def time_device_augment(
    example: ClipExample, batch: int, device: torch.device, repeats: int
) -> harness.Timings:
    """Wall time of `crop_resize_flip` on one batch of `batch` clips already on `device`."""
    examples = collate([example(Slot(0, row)) for row in range(batch)])
    windows, views = examples["video"].to(device), examples["view"]
    return harness.time_interleaved(
        {"device_augment": lambda: crop_resize_flip(windows, views)}, device, 1, repeats
    )


def main() -> None:
    started = time.perf_counter()
    args = harness.parse_args(__doc__.splitlines()[0])
    device = torch.device("cpu")
    params = setups.compose_ladder("ladder=4ds")
    cfg, curate = params.pretrain, params.curate
    frames, size, stride = curate.clip_frames, curate.resolution, cfg.frame_stride
    segment_frames, segments, per_shard, batch, batches, repeats = 64, 32, 8, 16, 4, 3
    if args.quick:
        frames, size, stride = 4, 32, 2
        segment_frames, segments, per_shard, batch, batches, repeats = 8, 4, 2, 4, 2, 1
    sampler = ClipSampler(frames, stride, cfg.crop_scale, cfg.crop_aspect)
    with torch.device("meta"):  # masks need the token grid, not weights
        model = build_mae(params.model(SCALE), params.mae, frames, size)
    work_dir = Path(tempfile.mkdtemp(prefix="fourds-loader-"))
    try:
        write_shards(work_dir, segments, segment_frames, size, per_shard)
        example = ClipExample(SegmentStore.open(work_dir), sampler, cfg.seed, model.sample_masks)
        cpu = {workers: [] for workers in WORKERS}  # CPU seconds per round, warm-up first
        timings = harness.time_interleaved(
            {
                f"workers_{workers}": lambda workers=workers: drain(
                    example, workers, batches, batch, cpu[workers]
                )
                for workers in WORKERS
            },
            device,
            warmup=1,
            repeats=repeats,
        )
        augment_device = harness.default_device()
        augment = time_device_augment(example, batch, augment_device, repeats)
        fed = None
        if augment_device.type == "cuda":
            fed = harness.time_interleaved(
                {"feed": lambda: feed(example, batches, batch, augment_device)},
                augment_device,
                warmup=1,
                repeats=repeats,
            )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    clips = batches * batch
    variants = {}
    for workers in WORKERS:
        name = f"workers_{workers}"
        rate = clips / timings.median(name)
        per_cpu_second = clips / statistics.median(cpu[workers][1:])
        variants[name] = {
            "workers": workers,
            "clips_per_s": round(rate, 2),
            "clips_per_s_per_worker": round(rate / workers, 2),
            "clips_per_cpu_second": round(per_cpu_second, 2),
            "time": timings.summary(name),
            "cpu_seconds": [round(seconds, 4) for seconds in cpu[workers][1:]],
        }
        print(
            f"{workers} worker(s): {rate:.1f} clips/s, {rate / workers:.1f} per worker, "
            f"{per_cpu_second:.1f} per CPU-second"
        )
    augment_rate = batch / augment.median("device_augment")
    print(f"crop_resize_flip on {augment_device.type}: {augment_rate:.1f} clips/s")
    results = {
        "variants": variants,
        "device_augment": {
            "device": harness.describe_device(augment_device),
            "clips_per_s": round(augment_rate, 2),
            "time": augment.summary("device_augment"),
        },
        # the rate `fourds plan` divides by: clips per CPU-second of the whole loader (worker,
        # batching and prefetch threads) with one worker, as each GPU's share scales
        "clips_per_s_per_core": variants["workers_1"]["clips_per_cpu_second"],
    }
    if fed is not None:
        rate = clips / fed.median("feed")
        print(f"2 workers, pinned, copied and augmented on the GPU: {rate:.1f} clips/s")
        results["feed_to_gpu"] = {"clips_per_s": round(rate, 2), "time": fed.summary("feed")}
    config = {
        "ladder": params.ladder.name,
        "clip": [frames, size, size, 3],
        "segment_frames": segment_frames,
        "frame_stride": stride,
        "crop_scale": list(cfg.crop_scale),
        "crop_aspect": list(cfg.crop_aspect),
        "masks": {
            "scale": SCALE,
            "mask_ratio": params.mae.mask_ratio,
            "mask_type": params.mae.mask_type,
            "tokens": model.encoder.num_tokens,
        },
        "segments": segments,
        "segments_per_shard": per_shard,
        "batch": batch,
        "batches_per_round": batches,
        "rounds": repeats,
        "prefetch": 2,
        "reads": "memory-mapped shards in the page cache (just written)",
    }
    harness.write_result("loader_throughput", args.out, device, config, results, started)


if __name__ == "__main__":
    with joined_loader_threads():
        main()
