"""The index of a split's shards, `<split>-index.json`, which curate writes beside them.

    {"split": "pretrain", "format": "webdataset",
     "shape": [F, S, S, 3], "dtype": "|u1",
     "shards": [{"name": "pretrain-000.tar", "bytes": 81920, "sha256": "...",
                 "segments": [[offset, length], ...],
                 "segment_sha256": ["...", ...]}, ...]}

Per shard file: its size and sha256, and for each row (segment) where the raw data of its video
(`shape` `dtype`, C order) lies, the bytes [offset, offset + length) of the file, and the sha256
of those bytes. That is all a reader needs to map a segment from a local file or fetch it with
one byte-range read, in either format, without opening an archive, and to check what it read;
the sha256 are computed once, by curate, so pretraining takes them for its run record and
resume fingerprint instead of hashing every shard in every rank, and checks each segment it
maps once per process (fourds.data.segments). Curate writes an index for every split; the
readout splits' shards are checked whole against theirs when read (`verify_shards`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from fourds.atomic import atomic_path, file_digest
from fourds.data.shards import npz, tar
from fourds.data.shards.spec import FORMATS, ShardError, shard_name, shard_paths

SEGMENT_READERS = {".npz": npz.video_segments, ".tar": tar.video_segments}


def index_name(split: str) -> str:
    """The index file of `split`, e.g. pretrain-index.json."""
    return f"{split}-index.json"


@dataclasses.dataclass(frozen=True)
class IndexedShard:
    """One shard file: name, size in bytes, sha256, and (offset, length) and sha256 of each
    segment."""

    name: str
    bytes: int
    sha256: str
    segments: tuple[tuple[int, int], ...]
    segment_sha256: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ShardIndex:
    """The shards of one split in order, and the shape and dtype of every segment."""

    split: str
    format: str
    shape: tuple[int, ...]
    dtype: str
    shards: tuple[IndexedShard, ...]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> ShardIndex:
        """Parse an index (`where` names its file in errors).

        Raises:
            ShardError: not an index, or a segment length that does not fit shape and dtype.
        """
        try:
            data = json.loads(text)
            shards = tuple(
                IndexedShard(
                    shard["name"],
                    int(shard["bytes"]),
                    shard["sha256"],
                    tuple((int(offset), int(length)) for offset, length in shard["segments"]),
                    tuple(str(digest) for digest in shard["segment_sha256"]),
                )
                for shard in data["shards"]
            )
            index = cls(data["split"], data["format"], tuple(data["shape"]), data["dtype"], shards)
            length = int(np.prod(index.shape)) * np.dtype(index.dtype).itemsize
        except (ValueError, KeyError, TypeError) as error:
            raise ShardError(
                f"{where} is not a readable shard index ({type(error).__name__}: {error}): "
                "curate again"
            ) from None
        if not shards:
            raise ShardError(f"{where} lists no shards; curate again")
        if any(len(shard.segment_sha256) != len(shard.segments) for shard in shards):
            raise ShardError(f"{where}: a digest per segment is missing; curate again")
        if any(span[1] != length for shard in shards for span in shard.segments):
            raise ShardError(
                f"{where}: segment lengths do not match {index.dtype} {list(index.shape)} "
                f"({length} bytes); curate again"
            )
        return index


def build_index(shard_dir: str | Path, split: str) -> ShardIndex:
    """Index the shards of `split` in `shard_dir`: reads every shard's headers and hashes
    every shard file.

    Raises:
        FileNotFoundError: there are no shards, or one is missing from the numbering (shard k
            absent while a later one exists); the message names the file.
        ShardError: the shards mix formats, a shard's videos cannot be read in place (see
            npz.video_segments, tar.video_segments), or the shards disagree on the segment
            shape or dtype.
    """
    paths = shard_paths(shard_dir, split)
    if not paths:
        raise FileNotFoundError(
            f"no shards for split {split!r} in {shard_dir}: run `dvc repro curate` first"
        )
    suffixes = sorted({path.suffix for path in paths})
    if len(suffixes) > 1:
        raise ShardError(
            f"{shard_dir} holds {split} shards of two formats ({suffixes}): curate again into "
            "an empty folder"
        )
    fmt = next(name for name, suffix in FORMATS.items() if suffix == suffixes[0])
    for number, path in enumerate(paths):
        expected = path.with_name(shard_name(split, number, fmt))
        if path != expected:
            raise FileNotFoundError(f"shard {expected} is missing (found {path.name})")
    layouts = [SEGMENT_READERS[path.suffix](path) for path in paths]
    first = layouts[0]
    for path, segments in zip(paths, layouts, strict=True):
        if (segments.shape, segments.dtype) != (first.shape, first.dtype):
            raise ShardError(
                f"{path}: segments {segments.dtype} {segments.shape} do not match "
                f"{paths[0].name}'s {first.dtype} {first.shape} (the same in every shard)"
            )
    shards = tuple(
        IndexedShard(
            path.name, path.stat().st_size, file_digest(path), segments.spans,
            segment_digests(path, segments.spans),
        )
        for path, segments in zip(paths, layouts, strict=True)
    )  # fmt: skip
    return ShardIndex(split, fmt, first.shape, first.dtype.str, shards)


def segment_digests(path: Path, spans: tuple[tuple[int, int], ...]) -> tuple[str, ...]:
    """sha256 of the bytes [offset, offset + length) of the file `path`, per span."""
    data = np.memmap(path, np.uint8, mode="r")
    return tuple(
        hashlib.sha256(data[offset : offset + length]).hexdigest() for offset, length in spans
    )


def check_bytes(data: np.ndarray, sha256: str, where: str) -> None:
    """Raise ShardError unless the bytes `data` (uint8 [n]) have the digest curate recorded;
    `where` names them (file and byte range)."""
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ShardError(
            f"{where} differ from what curate wrote (sha256 mismatch: the file is corrupted or "
            "was changed); restore it (`dvc checkout`) or curate again"
        )


_VERIFIED: set[tuple[str, int, int]] = set()  # (path, size, mtime_ns) checked in this process


def verify_shards(shard_dir: str | Path, split: str) -> None:
    """Check every shard of `split` against the index curate wrote beside them, once per process
    and file version: each file's size, then its sha256. Shards without an index (an older
    curate's) are not checked.

    Raises:
        ShardError: a shard is truncated, changed or corrupted, or the index does not list it;
            the message names the file.
    """
    index_path = Path(shard_dir) / index_name(split)
    if not index_path.exists():
        return
    index = ShardIndex.from_json(index_path.read_bytes(), str(index_path))
    listed = {shard.name: shard for shard in index.shards}
    for path in shard_paths(shard_dir, split):
        shard = listed.get(path.name)
        if shard is None:
            raise ShardError(f"{path} is not in the index {index_path}: curate again")
        stat = path.stat()
        version = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if version in _VERIFIED:
            continue
        if stat.st_size != shard.bytes:
            raise ShardError(
                f"{path} has {stat.st_size} bytes, the index {index_path} says {shard.bytes}: "
                "the file was truncated or replaced; restore it (`dvc checkout`) or curate again"
            )
        if file_digest(path) != shard.sha256:
            raise ShardError(
                f"{path} differs from what curate wrote (sha256 mismatch: the file is corrupted "
                "or was changed); restore it (`dvc checkout`) or curate again"
            )
        _VERIFIED.add(version)


def write_index(shard_dir: str | Path, split: str) -> ShardIndex:
    """Index the shards of `split` (see build_index) into `shard_dir`/<split>-index.json,
    atomically; returns the index."""
    index = build_index(shard_dir, split)
    with atomic_path(Path(shard_dir) / index_name(split)) as partial:
        partial.write_text(index.to_json() + "\n")
    return index
