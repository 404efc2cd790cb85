"""Curation: decode raw videos with PyAV, cut them into clips, write shards and a manifest.

The readout splits get fixed clips: curate.clip_frames frames, every curate.frame_stride-th
one, from non-overlapping spans. The pretrain split gets longer material, non-overlapping
segments of curate.pretrain_frames consecutive frames, from which pretraining samples its own
windows and crops (fourds.data.augment). `curate(data_dir, out_dir, cfg)` writes into `out_dir`:

    shards/<split>-<k>.npz   the clips (segments for pretrain) of each split
                      (fourds.data.shards has the format)
    manifest.json     per accepted clip or segment: split, source and its sha256, frame range
                      (in the resampled timeline) and the source frames it came from, fps,
                      shard, row, sha256 of the decoded frames; per rejected source: the reason

Sources are every file under data_dir/<split>/ except hidden files and `.npz` ground-truth
sidecars, in any container and codec PyAV decodes (see fourds.data.decode). A file that cannot
be used (empty, not a video, audio-only, undecodable, truncated, too short, or the same bytes
as a source already taken) is listed in `rejected` with the reason; the others are unaffected.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fourds.atomic import file_digest, write_json
from fourds.config import CurateConfig
from fourds.data.decode import decode_video
from fourds.data.shards import (
    GROUND_TRUTH_KEYS,
    PER_CLIP,
    PER_FRAME,
    PER_TRACK,
    SPLITS,
    ShardWriter,
)
from fourds.data.video import VideoError


def resize_ground_truth(
    truth: dict[str, np.ndarray], source_size: tuple[int, int], size: int
) -> dict[str, np.ndarray]:
    """Bring ground truth from source_size (height, width) pixels to size x size.

    Depth and instance ids are sampled at the new pixel centres (nearest, no blending across
    edges; depth stored as float16 metres); intrinsics, track positions and boxes are rescaled;
    the other keys, and keys absent from `truth`, are left as they are.
    """
    height, width = source_size
    rows = np.floor((np.arange(size) + 0.5) * height / size).astype(np.int64)
    cols = np.floor((np.arange(size) + 0.5) * width / size).astype(np.int64)
    scale = np.array([size / width, size / height], np.float32)
    resized = dict(truth)
    if "depth" in truth:
        resized["depth"] = truth["depth"][:, rows][:, :, cols].astype(np.float16)
    if "instances" in truth:
        resized["instances"] = truth["instances"][:, rows][:, :, cols]
    if "intrinsics" in truth:
        intrinsics = truth["intrinsics"].astype(np.float32).copy()
        intrinsics[:, :2] *= scale[:, None]
        resized["intrinsics"] = intrinsics
    if "tracks" in truth:
        resized["tracks"] = truth["tracks"] * scale
    if "boxes" in truth:
        resized["boxes"] = truth["boxes"] * np.tile(scale, 2)
    return resized


def clip_truth(truth: dict[str, np.ndarray], source_frames: np.ndarray) -> dict:
    """The ground truth of the clip made of `source_frames` [t] of a video."""
    clip = {key: truth[key][source_frames] for key in PER_FRAME}
    clip.update({key: truth[key][:, source_frames] for key in PER_TRACK})
    clip.update({key: truth[key] for key in PER_CLIP})
    return clip


def clip_starts(frame_count: int, span: int) -> range:
    """First frames of the non-overlapping clips of `span` frames in a video."""
    return range(0, frame_count - span + 1, span)


def in_rows(span: int, stride: int) -> Callable[[int], bool]:
    """Which frames of a video rows of `span` frames, every `stride`-th one, use (by index)."""
    return lambda index: index % span % stride == 0


def split_layout(cfg: CurateConfig, split: str) -> tuple[int, int, str]:
    """(span, stride, name) of the rows of `split`: pretrain segments of pretrain_frames
    consecutive frames, readout clips of clip_frames frames every frame_stride-th one."""
    if split == "pretrain":
        return cfg.pretrain_frames, 1, "segment"
    return cfg.span, cfg.frame_stride, "clip"


def _load_truth(video_path: Path, frame_count: int) -> dict[str, np.ndarray] | None:
    """The ground-truth sidecar of a synthetic video, or None for a real one."""
    truth_path = video_path.with_suffix(".npz")
    if not truth_path.exists():
        return None
    with np.load(truth_path, allow_pickle=False) as data:
        truth = {key: data[key] for key in GROUND_TRUTH_KEYS}
    counts = [len(truth[key]) for key in PER_FRAME] + [truth[key].shape[1] for key in PER_TRACK]
    if any(count != frame_count for count in counts):
        raise VideoError(f"{truth_path}: ground truth has a different frame count than the video")
    return truth


def list_sources(split_dir: Path) -> list[Path]:
    """Candidate videos of a split: every file but hidden ones and ground-truth sidecars."""
    if not split_dir.is_dir():
        return []
    return sorted(
        path
        for path in split_dir.iterdir()
        if path.is_file() and not path.name.startswith(".") and path.suffix != ".npz"
    )


def curate(data_dir: str | Path, out_dir: str | Path, cfg: CurateConfig) -> dict:
    """Cut every video under `data_dir/<split>/` into clips (segments for the pretrain split);
    returns the manifest."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clips, rejected = [], []
    taken: dict[str, Path] = {}  # source sha256 -> the source kept with that content
    for split in SPLITS:
        span, stride, row_name = split_layout(cfg, split)
        writer = ShardWriter(out_dir / "shards", split, cfg.clips_per_shard)
        for source in tqdm(list_sources(data_dir / split), desc=f"curate {split}", unit="video"):
            digest = file_digest(source)
            if digest in taken:
                reason = f"duplicate: the same content as {taken[digest]}"
                rejected.append({"source": str(source), "reason": reason})
                continue
            try:
                video = decode_video(
                    source, cfg.resolution, cfg.fps, cfg.crop, in_rows(span, stride)
                )
                truth = _load_truth(source, video.source_frames)
            except VideoError as error:
                rejected.append({"source": str(source), "reason": str(error)})
                continue
            if len(video.frames) < span:
                reason = f"too short: {len(video.frames)} frames, a {row_name} needs {span}"
                rejected.append({"source": str(source), "reason": reason})
                continue
            taken[digest] = source
            if truth is not None:
                truth = resize_ground_truth(truth, truth["depth"].shape[1:3], cfg.resolution)
            for start in clip_starts(len(video.frames), span):
                frames = np.arange(start, start + span, stride)
                row = {"video": np.ascontiguousarray(video.frames[frames])}
                if truth is not None:
                    row.update(clip_truth(truth, video.source_index[frames]))
                shard, index = writer.next_location
                clips.append(
                    {
                        "split": split,
                        "source": str(source),
                        "source_sha256": digest,
                        "frames": {
                            "start": int(start),
                            "stop": int(frames[-1]) + 1,
                            "stride": stride,
                        },
                        "source_frames": video.source_index[frames].tolist(),
                        "fps": video.fps,
                        "shard": shard,
                        "row": index,
                        "sha256": hashlib.sha256(row["video"].tobytes()).hexdigest(),
                    }
                )
                writer.add(row)
        writer.flush()
    manifest = {"clips": clips, "rejected": rejected}
    write_json(out_dir / "manifest.json", manifest)
    return manifest


def manifest_summary(manifest: dict) -> dict:
    """Counts per split for the stage's metrics file."""
    summary = {f"clips_{split}": 0 for split in SPLITS}
    for clip in manifest["clips"]:
        summary[f"clips_{clip['split']}"] += 1
    summary["rejected"] = len(manifest["rejected"])
    return summary
