"""What every shard format shares: split and array names, shard file names, the error, and the
.npy records that both formats store their arrays as.

A shard of split `<split>` is the file `<split>-<k>.<suffix>` (k = 000, 001, ...), where the
suffix says the format (FORMATS: "npz" -> .npz, "webdataset" -> .tar).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from fourds.atomic import file_digest
from fourds.errors import ShardError

SPLITS = ("pretrain", "readout-train", "readout-test")
FORMATS = {"npz": ".npz", "webdataset": ".tar"}  # format name -> shard file suffix

# Ground-truth keys by where the time axis is: first (per frame), second (per track or body,
# then per frame) or absent (per clip).
PER_FRAME = ("depth", "instances", "intrinsics", "extrinsics")
PER_TRACK = ("tracks", "visible", "boxes", "box_visible")
PER_CLIP = ("track_instance", "label")
GROUND_TRUTH_KEYS = PER_FRAME + PER_TRACK + PER_CLIP
# Per clip, in some corpora only: a catalog world's body kinds (fourds.world.catalog).
OPTIONAL_PER_CLIP = ("body_kind",)

NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


Row = tuple[dict[str, np.ndarray], dict[str, Any]]  # (arrays without the N axis, manifest fields)


@dataclasses.dataclass(frozen=True)
class Segments:
    """Where the rows' videos lie in one shard file: each row's video is `shape` `dtype`
    ([F, S, S, 3] uint8 for pretrain segments), its raw C-ordered data the bytes
    [offset, offset + length) of the file, one (offset, length) per row in `spans`."""

    shape: tuple[int, ...]
    dtype: np.dtype
    spans: tuple[tuple[int, int], ...]


def shard_name(split: str, number: int, fmt: str) -> str:
    """The file name of shard `number` of `split` in format `fmt`, e.g. pretrain-003.tar."""
    return f"{split}-{number:03d}{FORMATS[fmt]}"


def shard_paths(shard_dir: str | Path, split: str) -> list[Path]:
    """The shard files of `split` in `shard_dir` (any format), in the order of their numbers
    (pretrain-999 before pretrain-1000; empty if none)."""
    paths = [
        path for suffix in FORMATS.values() for path in Path(shard_dir).glob(f"{split}-*{suffix}")
    ]
    return sorted(paths, key=_shard_number)


def _shard_number(path: Path) -> tuple[int, str]:
    """(the shard's number, its name): names without a number sort after, by name."""
    number = path.stem.rpartition("-")[2]
    return (int(number) if number.isdigit() else sys.maxsize, path.name)


def shard_digests(paths: list[Path]) -> dict[str, str]:
    """str(path) -> sha256 of each shard file."""
    return {str(path): file_digest(path) for path in paths}


def read_npy_header(
    handle: BinaryIO, offset: int, end: int, path: Path, member: str
) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) of the .npy record `member` of the shard `path`, which starts
    at byte `offset` of `handle` (open on `path`) and must end by byte `end`.

    Raises:
        ShardError: no readable .npy header there, not a plain C-ordered array, or the array's
            data runs past `end` (a truncated shard).
    """
    handle.seek(offset)
    try:
        version = np.lib.format.read_magic(handle)
        read_header = NPY_HEADER_READERS.get(version)
        if read_header is None:
            raise ValueError(f".npy format version {version} is not supported")
        shape, fortran_order, dtype = read_header(handle)
    except ValueError as error:
        raise ShardError(f"{path}: {member!r} is not a readable array ({error})") from None
    if fortran_order or dtype.hasobject:
        raise ShardError(f"{path}: {member!r} is not a plain C-ordered array")
    data_offset = handle.tell()
    needed = data_offset + int(np.prod(shape)) * dtype.itemsize
    if needed > end:
        raise ShardError(
            f"{path} is truncated: {member!r} needs {needed} bytes, it ends at byte {end}; "
            "curate again"
        )
    return shape, dtype, data_offset
