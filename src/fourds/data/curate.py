"""Curation: decode raw videos with PyAV, cut them into clips, write shards and a manifest.

The readout splits get fixed clips: curate.clip_frames frames, every curate.frame_stride-th
one, from non-overlapping spans. The pretrain split gets longer material, non-overlapping
segments of curate.pretrain_frames consecutive frames, from which pretraining samples its own
windows and crops (fourds.data.augment). `curate(data_dir, out_dir, cfg)` writes into `out_dir`:

    shards/<split>-<k>.npz   the clips (segments for pretrain) of each split
                      (fourds.data.shards has the format)
    manifest.json     per accepted clip or segment: split, source (and its path inside the
                      split folder) and its sha256, the digest of its decoded frames, frame
                      range (in the resampled timeline) and the source frames it came from,
                      fps, shard, row, sha256 of the clip's frames; per rejected source: split,
                      source, path and the reason

Sources are every file under data_dir/<split>/, sub-folders included, except hidden files and
folders and `.npz` ground-truth sidecars, in any container and codec PyAV decodes (see
fourds.data.decode). A file that cannot be used (unreadable, empty, not a video, audio-only,
undecodable or damaged, truncated, frames above curate.max_frame_pixels, too short, a bad
sidecar (fourds.data.sidecar), ground truth that does not match the split's other sources, or
the same bytes or the same decoded frames as a source already taken, in any split) is listed in
`rejected` with the reason; the others are unaffected. The output folder is replaced whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fourds.atomic import atomic_directory, file_digest, write_json
from fourds.config import CurateConfig
from fourds.data.decode import decode_video
from fourds.data.shards import (
    PER_CLIP,
    PER_FRAME,
    PER_TRACK,
    SPLITS,
    ShardWriter,
)
from fourds.data.sidecar import load_sidecar, sidecar_path
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


def list_sources(split_dir: Path) -> list[Path]:
    """Candidate videos of a split: every file in it or its sub-folders (recursively), except
    hidden files and folders and ground-truth sidecars, in path order."""
    if not split_dir.is_dir():
        return []
    return sorted(
        path
        for path in split_dir.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(split_dir).parts)
        and path.suffix != ".npz"
    )


def check_data_dir(data_dir: Path) -> None:
    """Raise FileNotFoundError naming `data_dir` unless it holds at least one source.

    A missing or empty input would otherwise curate to zero clips and look like success.
    """
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"--data {data_dir}: no such folder (point --data at a folder with {list(SPLITS)} "
            "sub-folders of videos)"
        )
    if not any(list_sources(data_dir / split) for split in SPLITS):
        found = sorted(path.name for path in data_dir.iterdir())[:10]
        raise FileNotFoundError(
            f"--data {data_dir}: no videos in any of its {list(SPLITS)} sub-folders "
            f"(it holds {found})"
        )


class _Rejected(Exception):
    """A source curation cannot use: the reason goes to the manifest's `rejected` list."""


class _Seen:
    """The sources taken so far, across splits, and the row layout of the current split."""

    def __init__(self):
        self.taken: dict[str, Path] = {}  # source sha256 or decoded-content digest -> source
        self.layout: dict[str, tuple[tuple[int, ...], str]] | None = None

    def check_new(self, digest: str, what: str) -> None:
        if digest in self.taken:
            raise _Rejected(f"duplicate: {what} as {self.taken[digest]}")

    def check_layout(self, row: dict[str, np.ndarray], split: str) -> None:
        """Every row of a split must stack with the first: the same keys, shapes and kinds of
        dtype (labels of different string lengths stack)."""
        layout = {key: (value.shape, value.dtype.kind) for key, value in row.items()}
        if self.layout is None:
            self.layout = layout
        elif layout != self.layout:
            if layout.keys() != self.layout.keys():
                theirs = "have" if "depth" in self.layout else "have no"
                raise _Rejected(
                    f"ground truth: the other sources of {split} {theirs} a .npz sidecar, "
                    "this one does not match"
                )
            differ = sorted(key for key in layout if layout[key] != self.layout[key])
            raise _Rejected(
                f"ground truth {differ} differs in shape or type from the other sources of "
                f"{split} ({[layout[k] for k in differ]} vs {[self.layout[k] for k in differ]})"
            )


def _source_rows(
    source: Path, digest: str, cfg: CurateConfig, split: str, seen: _Seen
) -> list[tuple[dict[str, np.ndarray], dict]]:
    """Decode one source (whose file sha256 is `digest`) into its rows: (clip or segment
    arrays, manifest fields) each.

    Raises:
        _Rejected: the source cannot be used, with the reason.
    """
    span, stride, row_name = split_layout(cfg, split)
    seen.check_new(digest, "the same bytes")
    try:
        video = decode_video(
            source, cfg.resolution, cfg.fps, cfg.crop, in_rows(span, stride),
            cfg.max_frame_pixels, cfg.max_queued_mib << 20,
        )  # fmt: skip
        truth = None
        if sidecar_path(source).exists():
            truth = load_sidecar(sidecar_path(source), video.source_frames, cfg.max_frame_pixels)
    except VideoError as error:
        raise _Rejected(str(error)) from None
    seen.check_new(video.content_digest, "the same decoded frames")
    if len(video.frames) < span:
        raise _Rejected(f"too short: {len(video.frames)} frames, a {row_name} needs {span}")
    if truth is not None:
        truth = resize_ground_truth(truth, truth["depth"].shape[1:3], cfg.resolution)
    rows = []
    for start in clip_starts(len(video.frames), span):
        frames = np.arange(start, start + span, stride)
        row = {"video": np.ascontiguousarray(video.frames[frames])}
        if truth is not None:
            row.update(clip_truth(truth, video.source_index[frames]))
        seen.check_layout(row, split)
        fields = {
            "source_sha256": digest,
            "content_digest": video.content_digest,
            "frames": {"start": int(start), "stop": int(frames[-1]) + 1, "stride": stride},
            "source_frames": video.source_index[frames].tolist(),
            "fps": video.fps,
            "sha256": hashlib.sha256(row["video"].tobytes()).hexdigest(),
        }
        rows.append((row, fields))
    seen.taken[digest] = seen.taken[video.content_digest] = source
    return rows


def curate(data_dir: str | Path, out_dir: str | Path, cfg: CurateConfig) -> dict:
    """Cut every video under `data_dir/<split>/` (sub-folders included) into clips (segments
    for the pretrain split); returns the manifest.

    Everything is written to a temporary folder beside `out_dir` that replaces `out_dir` whole
    at the end: a crash leaves the previous output (or none), and curating again into the same
    `out_dir` leaves nothing of the previous run.

    Raises:
        FileNotFoundError: `data_dir` is missing or holds no source.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    check_data_dir(data_dir)
    clips, rejected = [], []
    seen = _Seen()
    with atomic_directory(out_dir) as partial:
        for split in SPLITS:
            writer = ShardWriter(partial / "shards", split, cfg.clips_per_shard)
            seen.layout = None
            sources = list_sources(data_dir / split)
            for source in tqdm(sources, desc=f"curate {split}", unit="video"):
                where = {"source": str(source), "path": str(source.relative_to(data_dir / split))}
                try:
                    digest = file_digest(source)
                except OSError as error:
                    reason = f"cannot read ({error.strerror or error})"
                    rejected.append({**where, "split": split, "reason": reason})
                    continue
                try:
                    rows = _source_rows(source, digest, cfg, split, seen)
                except _Rejected as reason:
                    rejected.append(
                        {**where, "split": split, "source_sha256": digest, "reason": str(reason)}
                    )
                    continue
                for row, fields in rows:
                    shard, index = writer.next_location
                    clips.append({"split": split, **where, **fields, "shard": shard, "row": index})
                    writer.add(row)
            writer.flush()
        manifest = {"clips": clips, "rejected": rejected}
        write_json(partial / "manifest.json", manifest)
    return manifest


def manifest_summary(manifest: dict) -> dict:
    """Counts per split for the stage's metrics file."""
    summary = {f"clips_{split}": 0 for split in SPLITS}
    for clip in manifest["clips"]:
        summary[f"clips_{clip['split']}"] += 1
    summary["rejected"] = len(manifest["rejected"])
    return summary
