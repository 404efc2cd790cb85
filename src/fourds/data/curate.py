"""Curation: decode raw videos with PyAV, cut them into clips, write shards and a manifest.

The readout splits get fixed clips: curate.clip_frames frames, every curate.frame_stride-th
one, from non-overlapping spans. The pretrain split gets longer material, non-overlapping
segments of curate.pretrain_frames consecutive frames, from which pretraining samples its own
windows and crops (fourds.data.augment). `curate(data_dir, out_dir, cfg)` writes into `out_dir`:

    shards/<split>-<k>.npz   the clips (segments for pretrain) of each split; the pretrain
                      split as shards/pretrain-<k>.tar with curate.pretrain_format=webdataset
                      (fourds.data.shards has the formats)
    shards/<split>-index.json
                      each shard's size and sha256, and where each clip's or segment's
                      video lies in it and its sha256 (fourds.data.shards.index): what
                      the readers check and pretraining maps
    manifest.json     per accepted clip or segment: split, source (and its path inside the
                      split folder) and its sha256, the digest of its decoded frames, frame
                      range (in the resampled timeline) and the source frames it came from,
                      fps, shard, row, sha256 of the clip's frames; per rejected source: split,
                      source, path and the reason

Sources are every file under data_dir/<split>/, sub-folders included (symbolic links to folders
followed, each folder listed once: a loop is not followed but listed in `rejected`), except
hidden files and folders and `.npz` ground-truth sidecars, in any container and codec PyAV
decodes (see fourds.data.decode). A file that cannot be used (unreadable, empty, not a video,
audio-only, undecodable or damaged, truncated, frames above curate.max_frame_pixels, frames and
sidecar over curate.max_decoded_mib decoded, too short, a bad sidecar (fourds.data.sidecar),
ground truth that does not match the split's other sources, or the same bytes or the same
decoded frames as a source already taken, in any split)
is listed in `rejected` with the reason; the others are unaffected. The output folder is
replaced whole.

How it runs: curate.workers processes (spawned; 0: the main process) each decode a source on
its own (`decode_source`: file sha256, PyAV decoding, sidecar, ground truth resized, rows). The
main process takes their results in source order as they arrive, a few sources per worker in
flight, and does every check that depends on earlier sources (duplicates, the split's row
layout) before writing, so the manifest and shards are byte-identical for any worker count.
A worker that dies stops the run with `WorkerError`, leaving the output folder as it was.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import multiprocessing
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fourds.atomic import atomic_directory, check_output_directory, file_digest, write_json
from fourds.config import CurateConfig
from fourds.data.decode import DecodedVideo, decode_video
from fourds.data.shards import (
    OPTIONAL_PER_CLIP,
    PER_CLIP,
    PER_FRAME,
    PER_TRACK,
    SPLITS,
    ShardWriter,
    write_index,
)
from fourds.data.sidecar import load_sidecar, sidecar_path
from fourds.data.video import VideoError
from fourds.errors import WorkerError

# Sources each worker process may have queued or decoded ahead of the one being written: enough
# to keep it busy, few enough to bound memory (a decoded source's rows wait in the parent).
IN_FLIGHT_PER_WORKER = 2


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
    pixels = (slice(None), rows[:, None], cols)  # straight to [T, size, size]: no [T, size, W]
    if "depth" in truth:
        resized["depth"] = truth["depth"][pixels].astype(np.float16)
    if "instances" in truth:
        resized["instances"] = truth["instances"][pixels]
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
    clip.update({key: truth[key] for key in (*PER_CLIP, *OPTIONAL_PER_CLIP) if key in truth})
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


@dataclasses.dataclass
class SplitListing:
    """What a split folder holds for curation (`list_split`).

    sources: candidate videos in path order, each by its path under the split folder (links
        kept as links: data/pretrain/linked/a.mp4).
    reached: the resolved split folder and the resolved target of every symbolic link followed:
        what curation reads, which an output must lie apart from.
    skipped: (path, reason) of what is not listed: a folder reached a second time (a link
        back to a folder that holds it, a loop, or a second path to one already listed), a
        symbolic link that cannot be followed, a folder that cannot be listed.
    """

    sources: list[Path] = dataclasses.field(default_factory=list)
    reached: list[Path] = dataclasses.field(default_factory=list)
    skipped: list[tuple[Path, str]] = dataclasses.field(default_factory=list)


def list_split(split_dir: Path) -> SplitListing:
    """Every file in `split_dir` or its sub-folders (recursively, through symbolic links to
    folders and files), except hidden files and folders and ground-truth sidecars.

    Each folder is listed once, by its resolved path: the real folders first, then those
    reached through links, so a folder has its real path when it has one. Whatever is not
    listed is in `skipped` with the reason, never dropped silently.
    """
    listing = SplitListing()
    listed: dict[Path, Path] = {}  # resolved folder -> the path it was listed as
    folders, linked = [split_dir] if split_dir.is_dir() else [], collections.deque()
    while folders or linked:
        folder = folders.pop() if folders else linked.popleft()
        target = folder.resolve()
        if target in listed:
            listing.skipped.append((folder, _listed_before(folder, target, listed[target])))
            continue
        listed[target] = folder
        if folder == split_dir or folder.is_symlink():
            listing.reached.append(target)
        _list_folder(folder, listing, folders, linked)
    listing.sources.sort()
    return listing


def _list_folder(
    folder: Path, listing: SplitListing, folders: list[Path], linked: collections.deque
) -> None:
    """Add the files of `folder` to `listing`, its sub-folders to `folders` (real ones) or
    `linked` (symbolic links), and what cannot be followed or read to `listing.skipped`."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as error:
        listing.skipped.append((folder, f"cannot list the folder ({error.strerror})"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = folder / entry.name
        try:
            mode = entry.stat().st_mode  # through a link, of what it leads to
        except OSError as error:
            what = "a symbolic link that cannot be followed" if entry.is_symlink() else ""
            listing.skipped.append((path, f"{what or 'cannot be read'} ({error.strerror})"))
            continue
        if stat.S_ISDIR(mode):
            (linked if entry.is_symlink() else folders).append(path)
        elif stat.S_ISREG(mode) and path.suffix != ".npz":
            listing.sources.append(path)
            if entry.is_symlink():
                listing.reached.append(path.resolve())


def _listed_before(folder: Path, target: Path, first: Path) -> str:
    """Why `folder`, resolving to `target` which was listed as `first`, is not listed again."""
    if folder.is_relative_to(first):
        return f"a symbolic link to {first}, which holds it: a loop, not followed"
    return f"a second path to {first} (both are {target}): listed once"


def check_data_dir(data_dir: Path, listings: dict[str, SplitListing]) -> None:
    """Raise FileNotFoundError naming `data_dir` unless it holds at least one source (its
    splits' `listings`).

    A missing or empty input would otherwise curate to zero clips and look like success.
    """
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"--data {data_dir}: no such folder (point --data at a folder with {list(SPLITS)} "
            "sub-folders of videos)"
        )
    if not any(listing.sources for listing in listings.values()):
        found = sorted(path.name for path in data_dir.iterdir())[:10]
        raise FileNotFoundError(
            f"--data {data_dir}: no videos in any of its {list(SPLITS)} sub-folders "
            f"(it holds {found})"
        )


class _Rejected(Exception):
    """A source curation cannot use: the reason goes to the manifest's `rejected` list."""


Row = tuple[dict[str, np.ndarray], dict]  # (clip or segment arrays, manifest fields)


@dataclasses.dataclass(frozen=True)
class Decoded:
    """What one source gives on its own, before it is checked against the other sources.

    digest: sha256 of the file's bytes; None when the file cannot be read.
    error: why the file cannot be read or decoded (not a video, damaged, a bad sidecar, ...);
        None when it decoded.
    content_digest: the digest of its decoded frames (fourds.data.decode.DecodedVideo).
    frame_count: how many frames it has at curate.fps.
    rows: its rows in order; empty when it is too short for one.
    """

    digest: str | None
    error: str | None = None
    content_digest: str = ""
    frame_count: int = 0
    rows: tuple[Row, ...] = ()


def decode_source(source: Path, cfg: CurateConfig, split: str) -> Decoded:
    """Hash and decode one source of `split` (its ground truth resized too) into its rows,
    looking at no other source: the work a worker process does."""
    try:
        digest = file_digest(source)
    except OSError as error:
        return Decoded(None, f"cannot read ({error.strerror or error})")
    span, stride, _ = split_layout(cfg, split)
    try:
        video = decode_video(
            source, cfg.resolution, cfg.fps, cfg.crop, in_rows(span, stride),
            cfg.max_frame_pixels, cfg.max_queued_mib << 20, cfg.max_decoded_mib << 20,
        )  # fmt: skip
        truth = None
        if sidecar_path(source).exists():
            truth = load_sidecar(
                sidecar_path(source), video.source_frames, cfg.max_frame_pixels,
                (cfg.max_decoded_mib << 20) - video.frames.nbytes, cfg.resolution,
            )  # fmt: skip
    except VideoError as error:
        return Decoded(digest, str(error))
    count = len(video.frames)
    if count < span:
        return Decoded(digest, None, video.content_digest, count)
    if truth is not None:
        truth = resize_ground_truth(truth, truth["depth"].shape[1:3], cfg.resolution)
    rows = tuple(
        _row(video, truth, start, span, stride, digest) for start in clip_starts(count, span)
    )
    return Decoded(digest, None, video.content_digest, count, rows)


def _row(
    video: DecodedVideo, truth: dict | None, start: int, span: int, stride: int, digest: str
) -> Row:
    """The row of every stride-th frame of video.frames[start : start + span] (with its
    ground truth, if any) of a source whose file sha256 is `digest`."""
    frames = np.arange(start, start + span, stride)
    # a slice: with stride 1 the row is a view of the decoded frames, not a second copy
    row = {"video": np.ascontiguousarray(video.frames[start : start + span : stride])}
    if truth is not None:
        row.update(clip_truth(truth, video.source_index[frames]))
    fields = {
        "source_sha256": digest,
        "content_digest": video.content_digest,
        "frames": {"start": int(start), "stop": int(frames[-1]) + 1, "stride": stride},
        "source_frames": video.source_index[frames].tolist(),
        "fps": video.fps,
        "sha256": hashlib.sha256(row["video"].tobytes()).hexdigest(),
    }
    return row, fields


def _layout(row: dict[str, np.ndarray]) -> dict[str, tuple[tuple[int, ...], str]]:
    """What rows of one shard must share: keys, shapes and kinds of dtype (labels of different
    string lengths stack)."""
    return {key: (value.shape, value.dtype.kind) for key, value in row.items()}


class _Seen:
    """The sources taken so far, across splits, and the row layout of each split."""

    def __init__(self):
        self.taken: dict[str, Path] = {}  # source sha256 or decoded-content digest -> source
        self.layouts: dict[str, dict[str, tuple[tuple[int, ...], str]]] = {}  # split -> layout

    def check_new(self, digest: str, what: str) -> None:
        if digest in self.taken:
            raise _Rejected(f"duplicate: {what} as {self.taken[digest]}")

    def check_layout(self, rows: tuple[Row, ...], split: str) -> None:
        """Every row of a split must stack with the split's first; the first source taken in
        a split sets its layout (all of that source's rows must share it)."""
        expected = self.layouts.get(split) or _layout(rows[0][0])
        for row, _ in rows:
            layout = _layout(row)
            if layout == expected:
                continue
            if layout.keys() != expected.keys():
                theirs = "have" if "depth" in expected else "have no"
                raise _Rejected(
                    f"ground truth: the other sources of {split} {theirs} a .npz sidecar, "
                    "this one does not match"
                )
            differ = sorted(key for key in layout if layout[key] != expected[key])
            raise _Rejected(
                f"ground truth {differ} differs in shape or type from the other sources of "
                f"{split} ({[layout[k] for k in differ]} vs {[expected[k] for k in differ]})"
            )

    def take(self, source: Path, decoded: Decoded, split: str) -> None:
        """Record an accepted source: its digests, and its layout if it is the split's first."""
        self.taken[decoded.digest] = self.taken[decoded.content_digest] = source
        self.layouts.setdefault(split, _layout(decoded.rows[0][0]))


def _accepted_rows(
    source: Path, decoded: Decoded, cfg: CurateConfig, split: str, seen: _Seen
) -> tuple[Row, ...]:
    """The rows of a readable source of `split`, checked against the sources taken before it
    (which it joins).

    Raises:
        _Rejected: the source cannot be used, with the reason.
    """
    span, _, row_name = split_layout(cfg, split)
    seen.check_new(decoded.digest, "the same bytes")
    if decoded.error is not None:
        raise _Rejected(decoded.error)
    seen.check_new(decoded.content_digest, "the same decoded frames")
    if decoded.frame_count < span:
        raise _Rejected(f"too short: {decoded.frame_count} frames, a {row_name} needs {span}")
    seen.check_layout(decoded.rows, split)
    seen.take(source, decoded, split)
    return decoded.rows


def exit_with_parent(parent: int) -> None:
    """Worker initializer: end this process as soon as the process `parent` that started it is
    gone (killed, say), instead of decoding the rest of its queue for nobody."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def decode_in_order(
    tasks: list[tuple[Path, str]], cfg: CurateConfig, workers: int
) -> Iterator[Decoded]:
    """decode_source of each (source, split) of `tasks`, yielded in their order.

    workers=0 decodes in this process; otherwise `workers` spawned processes decode at most
    IN_FLIGHT_PER_WORKER sources each ahead of the one being consumed, so memory stays bounded
    however many sources there are. Closing the iterator early stops the workers; a worker
    whose curating process is killed ends within a fraction of a second (`exit_with_parent`).

    Raises:
        WorkerError: a worker process died.
    """
    if workers == 0:
        yield from (decode_source(source, cfg, split) for source, split in tasks)
        return
    pool = ProcessPoolExecutor(
        workers, multiprocessing.get_context("spawn"), exit_with_parent, (os.getpid(),)
    )
    try:
        window: collections.deque[tuple[Path, Future]] = collections.deque()
        for source, split in tasks:
            window.append((source, pool.submit(decode_source, source, cfg, split)))
            if len(window) == workers * IN_FLIGHT_PER_WORKER:
                yield _result(*window.popleft())
        while window:
            yield _result(*window.popleft())
    finally:
        pool.shutdown(cancel_futures=True)


def _result(source: Path, future: Future) -> Decoded:
    """A worker's Decoded for `source`, waiting for it; a dead worker raises WorkerError."""
    try:
        return future.result()
    except BrokenProcessPool:
        raise WorkerError(
            f"a curate worker process died (killed, or out of memory?) while {source} or a "
            "source after it was being decoded; the output folder is unchanged. Run again, "
            "with a lower curate.workers if memory is short (0 decodes in the main process)"
        ) from None


def curate(data_dir: str | Path, out_dir: str | Path, cfg: CurateConfig) -> dict:
    """Cut every video under `data_dir/<split>/` (sub-folders included) into clips (segments
    for the pretrain split); returns the manifest.

    Sources are decoded by cfg.workers processes (0: this one) and written in source order, so
    the output does not depend on the worker count. Everything is written to a temporary folder
    beside `out_dir` that replaces `out_dir` whole at the end: a crash leaves the previous
    output (or none), and curating again into the same `out_dir` leaves nothing of the
    previous run.

    Raises:
        FileNotFoundError: `data_dir` is missing or holds no source.
        OutputError: `out_dir` is, holds or lies inside `data_dir` or a folder or file its
            symbolic links lead to, or holds files fourds did not write (checked before any
            file is read or written).
        WorkerError: a decoding worker process died.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    listings = {split: list_split(data_dir / split) for split in SPLITS}
    reached = [path for listing in listings.values() for path in listing.reached]
    check_output_directory(out_dir, (data_dir, *reached))
    check_data_dir(data_dir, listings)
    sources = {split: listings[split].sources for split in SPLITS}
    tasks = [(source, split) for split in SPLITS for source in sources[split]]
    clips, rejected = [], []
    seen = _Seen()
    with (
        atomic_directory(out_dir, "the curated shards") as partial,
        contextlib.closing(decode_in_order(tasks, cfg, cfg.workers)) as decoded_sources,
    ):
        for split in SPLITS:
            fmt = cfg.pretrain_format if split == "pretrain" else "npz"
            writer = ShardWriter(partial / "shards", split, cfg.clips_per_shard, fmt)
            for path, reason in listings[split].skipped:
                rejected.append(
                    {**_where(path, data_dir / split), "split": split, "reason": reason}
                )
            for source in tqdm(sources[split], desc=f"curate {split}", unit="video"):
                decoded = next(decoded_sources)
                where = _where(source, data_dir / split)
                if decoded.digest is None:
                    rejected.append({**where, "split": split, "reason": decoded.error})
                    continue
                try:
                    rows = _accepted_rows(source, decoded, cfg, split, seen)
                except _Rejected as reason:
                    found = {"source_sha256": decoded.digest, "reason": str(reason)}
                    rejected.append({**where, "split": split, **found})
                    continue
                for row, fields in rows:
                    shard, index = writer.next_location
                    clips.append({"split": split, **where, **fields, "shard": shard, "row": index})
                    writer.add(row, clips[-1])
            writer.flush()
            if writer.shards:
                write_index(partial / "shards", split)
        manifest = {"clips": clips, "rejected": rejected}
        write_json(partial / "manifest.json", manifest)
    return manifest


def _where(path: Path, split_dir: Path) -> dict[str, str]:
    """A manifest entry's source (as listed) and its path inside its split's folder."""
    return {"source": str(path), "path": str(path.relative_to(split_dir))}


def manifest_summary(manifest: dict) -> dict:
    """Counts per split for the stage's metrics file."""
    summary = {f"clips_{split}": 0 for split in SPLITS}
    for clip in manifest["clips"]:
        summary[f"clips_{clip['split']}"] += 1
    summary["rejected"] = len(manifest["rejected"])
    return summary
