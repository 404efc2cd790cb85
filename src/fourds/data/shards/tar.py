"""The WebDataset shard format: one POSIX tar per shard, one sample per row.

A shard `<split>-<k>.tar` holds, per row, a sample whose members share the key
`<split>-<k>-<row>` (six digits), in row order:

    <key>.<array>.npy   one .npy file per array of the row (video uint8 [F, S, S, 3], and
                        ground truth when the split has it; see fourds.data.shards for keys)
    <key>.json          the row's manifest fields (source, frames, sha256, ...)

This is what the `webdataset` package, torchdata and `tar` read. Members are plain ustar
entries, stored uncompressed at 512-byte-aligned offsets, with fixed metadata (mtime 0, owner
0, mode 644), so the same rows give the same bytes. Each `.video.npy` is one contiguous .npy
record: `video_segments` gives where each sample's video data lies, which is what the shard
index records and readers map or fetch.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fourds.atomic import atomic_path
from fourds.data.shards.spec import Row, Segments, ShardError, read_npy_header

VIDEO = "video.npy"
END_OF_ARCHIVE = 2 * tarfile.BLOCKSIZE  # zero bytes that end every tar


def write(path: Path, rows: list[Row]) -> None:
    """Write `rows` (arrays without the N axis, manifest fields) as the shard `path`, one
    sample per row, atomically."""
    with (
        atomic_path(path) as partial,
        tarfile.open(partial, "w", format=tarfile.USTAR_FORMAT) as archive,
    ):
        for number, (arrays, fields) in enumerate(rows):
            key = f"{path.name.removesuffix(path.suffix)}-{number:06d}"
            for name, array in arrays.items():
                record = io.BytesIO()
                np.save(record, array, allow_pickle=False)
                _add(archive, f"{key}.{name}.npy", record.getvalue())
            _add(archive, f"{key}.json", json.dumps(fields, sort_keys=True).encode())


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    """Append the member `name` holding `data`, with fixed metadata."""
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    archive.addfile(info, io.BytesIO(data))


@contextlib.contextmanager
def _members(path: Path) -> Iterator[tuple[tarfile.TarFile, Iterator[tarfile.TarInfo]]]:
    """The open archive and its members in order; tar errors become a ShardError naming it."""
    try:
        with tarfile.open(path, "r:") as archive:
            yield archive, iter(archive)
    except tarfile.TarError as error:
        raise ShardError(f"{path} is not a readable tar shard ({error}): curate again") from None


def read(path: Path, keys: tuple[str, ...] | None) -> dict[str, np.ndarray]:
    """The arrays `keys` (None: all) of the shard `path`, its samples' rows stacked: [N, ...].

    Raises:
        KeyError: the shard lacks one of `keys`.
        ShardError: the file is not a readable tar, or its samples do not all hold the same
            arrays.
    """
    columns: dict[str, list[np.ndarray]] = {}
    with _members(path) as (archive, members):
        for member in members:
            name = member.name.partition(".")[2].removesuffix(".npy")
            if member.name.endswith(".npy") and (keys is None or name in keys):
                record = io.BytesIO(archive.extractfile(member).read())
                columns.setdefault(name, []).append(np.load(record, allow_pickle=False))
    missing = sorted(set(keys or ()) - set(columns))
    if missing:
        raise KeyError(f"{path} has no {missing} (it has {sorted(columns)})")
    if len({len(rows) for rows in columns.values()}) > 1:
        raise ShardError(f"{path}: its samples do not all hold the same arrays; curate again")
    return {name: np.stack(rows) for name, rows in columns.items()}


def video_segments(path: Path) -> Segments:
    """Where the video data of each sample lies in the shard `path`.

    Raises:
        ShardError: the file is not a readable tar (a truncated one included), a video is not
            a readable .npy record, or the samples' videos differ in shape or dtype.
    """
    spans, layout = [], None
    with _members(path) as (archive, members), open(path, "rb") as handle:
        for member in members:
            if not member.name.endswith(f".{VIDEO}"):
                continue
            end = member.offset_data + member.size
            shape, dtype, start = read_npy_header(
                handle, member.offset_data, end, path, member.name
            )
            if layout not in (None, (shape, dtype)):
                raise ShardError(
                    f"{path}: {member.name} is {dtype} {shape}, the shard's first video "
                    f"{layout[1]} {layout[0]}; curate again"
                )
            layout = (shape, dtype)
            spans.append((start, int(np.prod(shape)) * dtype.itemsize))
        # tarfile ends quietly where a member is cut short: the end-of-archive blocks must follow
        handle.seek(archive.offset)
        if handle.read(END_OF_ARCHIVE) != bytes(END_OF_ARCHIVE):
            raise ShardError(f"{path} is truncated after byte {archive.offset}: curate again")
    if layout is None:
        raise ShardError(f"{path} holds no *.{VIDEO} member: not a shard curate wrote")
    return Segments(layout[0], layout[1], tuple(spans))
