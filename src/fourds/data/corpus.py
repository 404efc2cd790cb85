"""The embedded corpus: the procedural world written as video files plus ground truth.

Layout written by `write_corpus(root, spec)`:

    root/world.json                 the WorldSpec that produced the corpus
    root/<split>/<name>.mp4         H.264 video, spec.frames frames of spec.size x spec.size
    root/<split>/<name>.npz         ground truth: depth [T, H, W] float16 metres (z-depth),
                                    intrinsics [T, 3, 3] pixels, extrinsics [T, 4, 4]
                                    world-to-camera (OpenCV axes)

Splits are disjoint by seed: video i of split s is rendered from SeedSequence([seed, s, i]).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fourds.data.video import write_video
from fourds.records import atomic_path
from fourds.world import render_clip, sample_scene

SPLITS = ("pretrain", "readout-train", "readout-test")


@dataclasses.dataclass(frozen=True)
class WorldSpec:
    """What `fourds synth` renders. The defaults are the pinned embedded corpus."""

    seed: int = 0
    frames: int = 32
    size: int = 64
    fps: int = 12
    videos: dict[str, int] = dataclasses.field(
        default_factory=lambda: {"pretrain": 96, "readout-train": 32, "readout-test": 16}
    )


def video_seed(spec: WorldSpec, split: str, index: int) -> np.random.SeedSequence:
    """The seed of one video: distinct per (corpus seed, split, index)."""
    return np.random.SeedSequence([spec.seed, SPLITS.index(split), index])


def write_ground_truth(
    path: Path, depth: np.ndarray, intrinsics: np.ndarray, extrinsics: np.ndarray
) -> None:
    """Save one video's ground truth as a compressed npz (no pickled objects)."""
    with atomic_path(path) as partial, open(partial, "wb") as handle:
        np.savez_compressed(
            handle,
            depth=depth.astype(np.float16),
            intrinsics=intrinsics.astype(np.float32),
            extrinsics=extrinsics.astype(np.float32),
        )


def write_corpus(root: str | Path, spec: WorldSpec = WorldSpec()) -> list[Path]:
    """Render every video of `spec` under `root`; returns the video paths written."""
    root = Path(root)
    written = []
    jobs = [(split, index) for split in SPLITS for index in range(spec.videos.get(split, 0))]
    for split, index in tqdm(jobs, desc="synth", unit="video"):
        rng = np.random.default_rng(video_seed(spec, split, index))
        rendering = render_clip(sample_scene(rng), spec.frames, spec.size, spec.size, spec.fps)
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{index:05d}"
        write_video(folder / f"{name}.mp4", rendering.video, spec.fps)
        write_ground_truth(
            folder / f"{name}.npz", rendering.depth, rendering.intrinsics, rendering.extrinsics
        )
        written.append(folder / f"{name}.mp4")
    with atomic_path(root / "world.json") as partial:
        partial.write_text(json.dumps(dataclasses.asdict(spec), indent=2) + "\n")
    return written
