"""The embedded corpus: the procedural world written as video files plus ground truth.

Layout written by `write_corpus(root, spec)`:

    root/world.json                 the WorldSpec that produced the corpus
    root/<split>/<name>.mp4         H.264 video, spec.frames frames of spec.size x spec.size
    root/<split>/<name>.npz         ground truth (fourds.world.Rendering has the details):
                                    depth [T, H, W] float16 metres (z-depth), instances
                                    [T, H, W] uint8, intrinsics [T, 3, 3] pixels, extrinsics
                                    [T, 4, 4] world-to-camera (OpenCV axes), tracks [N, T, 2]
                                    pixels, visible [N, T], track_instance [N], boxes
                                    [M, T, 4] pixels, box_visible [M, T], label [] str:
                                    the clip's class, its camera motion ("orbit", "dolly",
                                    "pan" or "static"), a '<U..' array (no pickle);
                                    in a catalog world also body_kind [M] int16, each
                                    body slot's kind (fourds.world.catalog; -1: empty)

Splits are disjoint by seed: video i of split s is rendered from SeedSequence([seed, s, i])
by fourds.world.scene and .render (renderer "numpy": the same bytes on any machine), or, with
renderer "batched", from clip key clip_keys(seed, s, i, CORPUS) by the batched world on a device
(fourds.world.batch, .batch_render: the same frames on any device within a colour level).
Classes are balanced: video i's camera motion is CAMERA_MOTIONS[i % 4].
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fourds.atomic import atomic_path, claim_output_directory
from fourds.config import ConfigError
from fourds.config.world_levels import STANDARD, world_level
from fourds.data.shards import SPLITS
from fourds.data.video import write_video
from fourds.world import Rendering, render_clip, sample_scene
from fourds.world.batch import sample_scenes
from fourds.world.batch_render import render_batch
from fourds.world.draws import CORPUS, clip_keys
from fourds.world.scene import CAMERA_MOTIONS, FRAME_RATE

RENDERERS = ("numpy", "batched")
# The world's ranges (WorldSpec): seeds torch's and numpy's generators take, and sizes whose
# videos render in minutes, not hours (a 1024-frame video at 512 px is a gigabyte of pixels).
MAX_SEED, MAX_FRAMES, MAX_SIZE, MAX_VIDEOS = 2**63 - 1, 1024, 512, 1_000_000
BATCHED_VIDEOS = 32  # videos the batched renderer draws together


@dataclasses.dataclass(frozen=True)
class WorldSpec:
    """What `fourds synth` renders. The defaults are the pinned embedded corpus.

    Attributes:
        seed: corpus seed (see video_seed).
        frames: frames per video; size: frame height and width in pixels; fps: frame rate.
        videos: number of videos per split (a split left out gets none).
        renderer: "numpy" (one scene at a time, bit for bit on any machine) or "batched"
            (the batched world, drawn and rendered in torch on the device write_corpus is
            given; see the module docstring).
        complexity: the world's level its scenes are drawn from (fourds.config.world_levels;
            "standard": the embedded corpus's).
    """

    seed: int = 0
    frames: int = 32
    size: int = 64
    fps: int = FRAME_RATE
    videos: dict[str, int] = dataclasses.field(
        default_factory=lambda: {"pretrain": 384, "readout-train": 64, "readout-test": 48}
    )
    renderer: str = "numpy"
    complexity: str = STANDARD

    def __post_init__(self):
        if self.renderer not in RENDERERS:
            raise ValueError(f"unknown renderer {self.renderer!r}; expected one of {RENDERERS}")
        world_level(self.complexity)  # an unknown level is a ValueError naming the levels
        for name, value, low, high in (
            ("seed", self.seed, 0, MAX_SEED),
            ("frames", self.frames, 1, MAX_FRAMES),
            ("size", self.size, 8, MAX_SIZE),
            ("fps", self.fps, 1, 240),
            *((f"videos[{split}]", count, 0, MAX_VIDEOS) for split, count in self.videos.items()),
        ):
            if not low <= value <= high:
                raise ConfigError(f"the world's {name} must be in [{low}, {high}], not {value}")


def video_seed(spec: WorldSpec, split: str, index: int) -> np.random.SeedSequence:
    """The seed of one video: distinct per (corpus seed, split, index)."""
    return np.random.SeedSequence([spec.seed, SPLITS.index(split), index])


def write_ground_truth(path: Path, rendering: Rendering, kinds: bool = False) -> None:
    """Save one video's ground truth as a compressed npz (no pickled objects), with its
    bodies' kinds where `kinds` (a catalog world)."""
    extra = {"body_kind": rendering.body_kind} if kinds else {}
    with atomic_path(path) as partial, open(partial, "wb") as handle:
        np.savez_compressed(
            handle,
            depth=rendering.depth.astype(np.float16),
            instances=rendering.instances,
            intrinsics=rendering.intrinsics.astype(np.float32),
            extrinsics=rendering.extrinsics.astype(np.float32),
            tracks=rendering.tracks,
            visible=rendering.visible,
            track_instance=rendering.track_instance,
            boxes=rendering.boxes,
            box_visible=rendering.box_visible,
            label=np.str_(rendering.label),
            **extra,
        )


def numpy_renderings(spec: WorldSpec, split: str) -> Iterator[Rendering]:
    """The videos of `split`, one scene at a time (renderer "numpy")."""
    for index in range(spec.videos.get(split, 0)):
        rng = np.random.default_rng(video_seed(spec, split, index))
        motion = CAMERA_MOTIONS[index % len(CAMERA_MOTIONS)]
        scene = sample_scene(rng, motion, world_level(spec.complexity))
        yield render_clip(scene, spec.frames, spec.size, spec.size, spec.fps)


def batched_renderings(spec: WorldSpec, split: str, device: torch.device) -> Iterator[Rendering]:
    """The videos of `split`, BATCHED_VIDEOS at a time on `device` (renderer "batched")."""
    count = spec.videos.get(split, 0)
    for start in range(0, count, BATCHED_VIDEOS):
        index = torch.arange(start, min(count, start + BATCHED_VIDEOS), device=device)
        keys = clip_keys(spec.seed, SPLITS.index(split), index, CORPUS)
        motion = index % len(CAMERA_MOTIONS)
        scenes = sample_scenes(keys, motion, world_level(spec.complexity))
        times = (torch.arange(spec.frames, device=device) / spec.fps).expand(len(index), -1)
        batch = render_batch(scenes, times, spec.size)
        yield from (batch.clip(row) for row in range(len(index)))


def write_corpus(
    root: str | Path, spec: WorldSpec = WorldSpec(), device: str | torch.device = "cpu"
) -> list[Path]:
    """Render every video of `spec` under `root` (the batched renderer on `device`); returns
    the video paths written.

    Raises OutputError when `root` holds files fourds did not write (or cannot be written).
    """
    root = claim_output_directory(root)
    written = []
    total = sum(spec.videos.get(split, 0) for split in SPLITS)
    progress = tqdm(total=total, desc="synth", unit="video")
    kinds = world_level(spec.complexity).catalog is not None
    for split in SPLITS:
        if spec.renderer == "batched":
            renderings = batched_renderings(spec, split, torch.device(device))
        else:
            renderings = numpy_renderings(spec, split)
        for index, rendering in enumerate(renderings):
            progress.update()
            folder = root / split
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{index:05d}"
            write_video(folder / f"{name}.mp4", rendering.video, spec.fps)
            write_ground_truth(folder / f"{name}.npz", rendering, kinds)
            written.append(folder / f"{name}.mp4")
    progress.close()
    with atomic_path(root / "world.json") as partial:
        partial.write_text(json.dumps(dataclasses.asdict(spec), indent=2) + "\n")
    return written
