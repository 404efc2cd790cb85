"""Curation throughput against PyAV's raw decode rate on the same files.

A corpus of H.264 MP4 and VP9 WebM videos (640x360, 30 fps, moving colour blocks with
per-pixel noise, so that bitrates are those of camera footage; the quick mode uses 128x72)
is written once. Two variants then run in turns (A, B, A, B, ...):

- raw decode: open each file with PyAV and decode every frame of its video stream (threaded
  decoding, as curation uses), nothing else;
- curation: `fourds.data.curate.curate` on the same files: hashing each source, decoding,
  turning frames upright, resizing and centre-cropping to 64x64, cutting clips, hashing them
  and writing shards and the manifest.

Rates are source frames per second; the target is curation >= 0.8x the raw decode rate.

Run: python benchmarks/curation_throughput.py [--quick]
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import av
import harness
import numpy as np
import torch

from fourds.config import CurateConfig
from fourds.data.curate import curate

TARGET = 0.8
NOISE = 8  # +-8 grey levels of per-pixel noise: bitrates like camera footage, not cartoons
CURATE = CurateConfig(
    clip_frames=8,
    frame_stride=2,
    pretrain_frames=16,
    resolution=64,
    clips_per_shard=64,
    fps=0.0,
    crop="center",
)


def write_corpus(root: Path, videos: int, frames: int, height: int, width: int) -> list[Path]:
    """`videos` files under root/pretrain/, alternating mp4/H.264 and webm/VP9; their paths."""
    split = root / "pretrain"
    split.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for index in range(videos):
        suffix, container_format, codec = (
            (".mp4", "mp4", "libx264") if index % 2 == 0 else (".webm", "webm", "libvpx-vp9")
        )
        path = split / f"video{index:02d}{suffix}"
        tiles = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
        base = tiles.repeat(8, axis=0).repeat(8, axis=1)
        with av.open(str(path), "w", format=container_format) as container:
            stream = container.add_stream(codec, rate=30)
            stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
            for step in range(frames):  # the pattern slides right and down, with sensor noise
                image = np.roll(base, (step, 2 * step), axis=(0, 1))[:height, :width]
                noise = rng.integers(-NOISE, NOISE + 1, image.shape)
                image = np.clip(image + noise, 0, 255).astype(np.uint8)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        paths.append(path)
    return paths


def raw_decode(paths: list[Path]) -> int:
    """Decode every frame of every file; returns the frame count."""
    count = 0
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for _ in container.decode(stream):
                count += 1
    return count


def main() -> None:
    started = time.perf_counter()
    args = harness.parse_args(__doc__.splitlines()[0])
    device = torch.device("cpu")
    videos, frames, height, width = (2, 20, 72, 128) if args.quick else (8, 150, 360, 640)
    repeats = 1 if args.quick else 3
    work_dir = Path(tempfile.mkdtemp(prefix="fourds-curation-"))
    try:
        paths = write_corpus(work_dir / "data", videos, frames, height, width)
        source_frames = raw_decode(paths)
        out = work_dir / "out"

        def curation() -> None:
            shutil.rmtree(out, ignore_errors=True)
            manifest = curate(work_dir / "data", out, CURATE)
            assert not manifest["rejected"], manifest["rejected"]

        timings = harness.time_interleaved(
            {"raw_decode": lambda: raw_decode(paths), "curation": curation},
            device,
            warmup=1,
            repeats=repeats,
        )
        corpus_bytes = sum(path.stat().st_size for path in paths)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    raw_rate = source_frames / timings.median("raw_decode")
    curation_rate = source_frames / timings.median("curation")
    ratio = timings.paired_ratio("raw_decode", "curation")
    results = {
        "source_frames": source_frames,
        "corpus_mib": round(corpus_bytes / harness.MIB, 1),
        "mean_bitrate_mbps": round(corpus_bytes * 8 / (source_frames / 30) / 1e6, 2),
        "step_time": {name: timings.summary(name) for name in ("raw_decode", "curation")},
        "raw_decode_frames_per_s": round(raw_rate, 1),
        "curation_frames_per_s": round(curation_rate, 1),
        "curation_over_raw": round(curation_rate / raw_rate, 3),
        "curation_over_raw_paired_median": round(ratio, 3),
        "target": TARGET,
        "target_met": ratio >= TARGET,
    }
    config = {
        "videos": videos,
        "codecs": "mp4/H.264 and webm/VP9, alternating",
        "frames_per_video": frames,
        "source_size": [height, width],
        "fps": 30,
        "curate": dataclasses.asdict(CURATE),
        "rounds": repeats,
    }
    print(
        f"raw decode {raw_rate:.0f} frames/s, curation {curation_rate:.0f} frames/s "
        f"({ratio:.2f}x; target {TARGET}x)"
    )
    harness.write_result("curation_throughput", args.out, device, config, results, started)


if __name__ == "__main__":
    main()
