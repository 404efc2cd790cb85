"""The npz shard format: one `np.savez` file per shard, the shard's N rows stacked per array.

A shard `<split>-<k>.npz` is a zip file with one member `<key>.npy` per array ([N, ...], see
fourds.data.shards for the keys). np.savez stores members uncompressed (ZIP_STORED), so the
bytes of `video.npy` lie unchanged, as one contiguous .npy record, at a fixed offset in the file:
`video_segments` finds it (the member's local zip header gives where its data starts) and where
each row's video lies, which is what the shard index records and readers map or fetch.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np

from fourds.atomic import atomic_path
from fourds.data.shards.spec import Row, Segments, ShardError, read_npy_header

LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # a zip local file header, before name and extra
LOCAL_SIGNATURE = b"PK\x03\x04"
VIDEO = "video.npy"


def write(path: Path, rows: list[Row]) -> None:
    """Write `rows` (arrays without the N axis; their manifest fields are not stored here) as
    the shard `path`, atomically."""
    arrays = {key: np.stack([arrays[key] for arrays, _ in rows]) for key in rows[0][0]}
    with atomic_path(path) as partial, open(partial, "wb") as handle:
        np.savez(handle, **arrays)


def read(path: Path, keys: tuple[str, ...] | None) -> dict[str, np.ndarray]:
    """The arrays `keys` (None: all) of the shard `path`, [N, ...] each.

    Raises:
        KeyError: the shard lacks one of `keys`.
    """
    with np.load(path, allow_pickle=False) as data:
        missing = sorted(set(keys or ()) - set(data.files))
        if missing:
            raise KeyError(f"{path} has no {missing} (it has {sorted(data.files)})")
        return {key: data[key] for key in keys or data.files}


def member_offset(path: Path, member: str) -> int:
    """Byte offset in the zip file `path` where the stored (uncompressed) `member` starts.

    Raises:
        ShardError: `path` is not a zip file, lacks `member`, or stores it compressed.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(member)
    except zipfile.BadZipFile as error:
        raise ShardError(f"{path} is not a readable shard ({error}): curate again") from None
    except KeyError:
        raise ShardError(f"{path} has no {member!r} array") from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise ShardError(
            f"{path} stores {member!r} compressed, so it cannot be memory-mapped: shards are "
            "written by np.savez (uncompressed); curate again"
        )
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        fields = LOCAL_HEADER.unpack(handle.read(LOCAL_HEADER.size))
    if fields[0] != LOCAL_SIGNATURE:
        raise ShardError(f"{path}: damaged zip header of {member!r}: curate again")
    name_length, extra_length = fields[-2:]
    return info.header_offset + LOCAL_HEADER.size + name_length + extra_length


def video_segments(path: Path) -> Segments:
    """Where each row of the shard's `video` array [N, ...] lies in the file `path`.

    Raises:
        ShardError: `video.npy` cannot be read in place (see `member_offset`,
            fourds.data.shards.spec.read_npy_header), e.g. the shard is truncated.
    """
    offset = member_offset(path, VIDEO)
    with open(path, "rb") as handle:
        shape, dtype, start = read_npy_header(handle, offset, handle.seek(0, 2), path, VIDEO)
    if not shape:
        raise ShardError(f"{path}: {VIDEO!r} holds a scalar, not one video per row")
    length = int(np.prod(shape[1:])) * dtype.itemsize
    spans = tuple((start + row * length, length) for row in range(shape[0]))
    return Segments(shape[1:], dtype, spans)
