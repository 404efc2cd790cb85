"""The pretrain segments of every shard, memory-mapped: each rank reads only what it samples.

Layout choice. The shards stay what `curate` writes (fourds.data.shards): `np.savez` stores each
array as a `<key>.npy` member of a zip file *without compression* (ZIP_STORED), so the bytes of
`video.npy` lie unchanged, as one contiguous .npy file, at a fixed offset inside the .npz. This
module finds that offset (the member's local zip header gives where its data starts), reads the
.npy header there, and maps the array's bytes read-only with `np.memmap`. Compared with writing
the video a second time as its own .npy file beside each shard, nothing changes on disk: no format
version, no doubled storage, the same files in the DVC outputs, the same shard digests (so run
records and resume fingerprints of earlier runs still hold), and `load_split` keeps reading the
readout splits as before. The pages a rank never samples are never read (the shard digests
taken for the run record still stream every file once).

`SegmentStore.open(shard_dir)` maps the `video` member of every pretrain shard; the store is a
sequence of segments: `store[i]` is segment i (uint8 [F, S, S, 3], a read-only view of the
mapped file) counting across the shards in order, `len(store)` the number of segments.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np

from fourds.data.shards import ShardError, shard_paths

LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # a zip local file header, before name and extra
LOCAL_SIGNATURE = b"PK\x03\x04"
HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


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


def map_array(path: Path, member: str) -> np.ndarray:
    """The .npy array stored as `member` of the .npz `path`, memory-mapped read-only.

    Raises:
        ShardError: the member cannot be mapped (see `member_offset`), is not a C-ordered
            array, or the file ends before the array does (a truncated shard).
    """
    offset = member_offset(path, member)
    with open(path, "rb") as handle:
        handle.seek(offset)
        try:
            version = np.lib.format.read_magic(handle)
            read_header = HEADER_READERS.get(version)
            if read_header is None:
                raise ValueError(f".npy format version {version} is not supported")
            shape, fortran_order, dtype = read_header(handle)
        except ValueError as error:
            raise ShardError(f"{path}: {member!r} is not a readable array ({error})") from None
        data_offset = handle.tell()
        if fortran_order or dtype.hasobject:
            raise ShardError(f"{path}: {member!r} is not a plain C-ordered array")
        size = int(np.prod(shape)) * dtype.itemsize
        file_size = handle.seek(0, 2)
        if data_offset + size > file_size:
            raise ShardError(
                f"{path} is truncated: {member!r} needs {data_offset + size} bytes, the file has "
                f"{file_size}; curate again"
            )
    return np.memmap(path, dtype, mode="r", offset=data_offset, shape=shape)


class SegmentStore:
    """Pretraining segments over all shards, memory-mapped (see the module docstring).

    Args:
        videos: per shard, the mapped uint8 [N_k, F, S, S, 3] video array, in shard order.
    """

    def __init__(self, videos: list[np.ndarray]):
        self.videos = videos
        self.ends = np.cumsum([len(video) for video in videos])

    @classmethod
    def open(cls, shard_dir: str | Path, split: str = "pretrain") -> SegmentStore:
        """Map the `video` array of every shard of `split` in `shard_dir`.

        Raises:
            FileNotFoundError: there are no shards, or one is missing from the numbering
                (shard k absent while a later one exists); the message names the file.
            ShardError: a shard cannot be mapped (see `map_array`), or the shards disagree on
                the segment shape or dtype (uint8 [F, S, S, 3] in all).
        """
        paths = shard_paths(shard_dir, split)
        if not paths:
            raise FileNotFoundError(
                f"no shards for split {split!r} in {shard_dir}: run `dvc repro curate` first"
            )
        for index, path in enumerate(paths):
            expected = path.with_name(f"{split}-{index:03d}.npz")
            if path != expected:
                raise FileNotFoundError(f"shard {expected} is missing (found {path.name})")
        videos = [map_array(path, "video.npy") for path in paths]
        for path, video in zip(paths, videos, strict=True):
            if video.dtype != np.uint8 or video.ndim != 5 or video.shape[1:] != videos[0].shape[1:]:
                raise ShardError(
                    f"{path}: video {video.dtype} {video.shape} does not match "
                    f"{paths[0].name}'s {videos[0].dtype} {videos[0].shape} "
                    "(uint8 [N, F, S, S, 3] in every shard)"
                )
        return cls(videos)

    @property
    def frames(self) -> int:
        """F, the frames of every segment."""
        return self.videos[0].shape[1]

    def __len__(self) -> int:
        return int(self.ends[-1])

    def __getitem__(self, index: int) -> np.ndarray:
        """Segment `index` (0 <= index < len(self)): a read-only uint8 [F, S, S, 3] view."""
        if not 0 <= index < len(self):
            raise IndexError(f"segment {index} out of range: the store holds {len(self)}")
        shard = int(np.searchsorted(self.ends, index, side="right"))
        start = self.ends[shard - 1] if shard else 0
        return self.videos[shard][index - start]
