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
                                    "pan" or "static"), a '<U..' array (no pickle)

Splits are disjoint by seed: video i of split s is rendered from SeedSequence([seed, s, i]).
Classes are balanced: video i's camera motion is CAMERA_MOTIONS[i % 4].
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fourds.atomic import atomic_path, claim_output_directory
from fourds.data.shards import SPLITS
from fourds.data.video import write_video
from fourds.world import Rendering, render_clip, sample_scene
from fourds.world.scene import CAMERA_MOTIONS, FRAME_RATE


@dataclasses.dataclass(frozen=True)
class WorldSpec:
    """What `fourds synth` renders. The defaults are the pinned embedded corpus.

    Attributes:
        seed: corpus seed (see video_seed).
        frames: frames per video; size: frame height and width in pixels; fps: frame rate.
        videos: number of videos per split (a split left out gets none).
    """

    seed: int = 0
    frames: int = 32
    size: int = 64
    fps: int = FRAME_RATE
    videos: dict[str, int] = dataclasses.field(
        default_factory=lambda: {"pretrain": 384, "readout-train": 64, "readout-test": 48}
    )


def video_seed(spec: WorldSpec, split: str, index: int) -> np.random.SeedSequence:
    """The seed of one video: distinct per (corpus seed, split, index)."""
    return np.random.SeedSequence([spec.seed, SPLITS.index(split), index])


def write_ground_truth(path: Path, rendering: Rendering) -> None:
    """Save one video's ground truth as a compressed npz (no pickled objects)."""
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
        )


def write_corpus(root: str | Path, spec: WorldSpec = WorldSpec()) -> list[Path]:
    """Render every video of `spec` under `root`; returns the video paths written.

    Raises OutputError when `root` holds files fourds did not write (or cannot be written).
    """
    root = claim_output_directory(root)
    written = []
    jobs = [(split, index) for split in SPLITS for index in range(spec.videos.get(split, 0))]
    for split, index in tqdm(jobs, desc="synth", unit="video"):
        rng = np.random.default_rng(video_seed(spec, split, index))
        scene = sample_scene(rng, CAMERA_MOTIONS[index % len(CAMERA_MOTIONS)])
        rendering = render_clip(scene, spec.frames, spec.size, spec.size, spec.fps)
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{index:05d}"
        write_video(folder / f"{name}.mp4", rendering.video, spec.fps)
        write_ground_truth(folder / f"{name}.npz", rendering)
        written.append(folder / f"{name}.mp4")
    with atomic_path(root / "world.json") as partial:
        partial.write_text(json.dumps(dataclasses.asdict(spec), indent=2) + "\n")
    return written
