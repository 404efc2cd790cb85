"""The pretrain segments, read one at a time by index: each rank reads only what it samples.

`SegmentStore.open(location)` reads the split's index (`pretrain-index.json`, which curate
writes beside the shards; see fourds.data.shards.index): for every segment, the shard file and
the bytes [offset, offset + length) that hold its raw uint8 [F, S, S, 3] video. Both shard
formats (npz, WebDataset tar) store each video as one contiguous, uncompressed .npy record, so
the store never opens an archive:

- `location` a local folder (a path, or a file:// URL): every shard file is memory-mapped
  read-only (np.memmap) and a segment is a view of its bytes; the pages a rank never samples
  are never read.
- any other fsspec URL (s3://, gs://, http(s)://, dvc://, memory://, ...): a segment is a
  `FetchedSegment` that reads only the frames a clip takes, each run of consecutive frames one
  byte-range request (fsspec's `cat_ranges`, concurrent on async filesystems): a 4ds clip, 16
  frames every 4th of a 128-frame segment, moves 2.4 MB instead of the segment's 19 MB.
  dvc:// reads a folder this DVC repository tracks, e.g. `dvc://runs/curate/shards`, from the
  local cache or, when it is not there, straight from the DVC remote's object store.

Either way `store[i]` is segment i counting across the shards in order (uint8 [F, S, S, 3],
read-only, or a FetchedSegment that slices like one along its frames), the same bytes for either
format and source; `len(store)` is the number of segments.

The index's sha256 are curate's: `store.digests` serves them to run records and resume
fingerprints, and opening checks only the file sizes against the index (and, locally, that the
folder holds exactly the indexed shards). A mapped segment is checked against its own sha256
the first time a process maps it (a corrupted byte stops the run with a message naming the file
and the bytes); a fetched one is checked by size only, since it reads only the frames a clip
takes (the store it comes from checks its transfers: DVC's remote `verify`, object stores'
checksums). A local folder without an index (shards of an older curate) is indexed on opening,
which hashes every shard; a URL without one is an error.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import fsspec
import numpy as np

from fourds.data.shards import (
    IndexedShard,
    ShardError,
    ShardIndex,
    build_index,
    check_bytes,
    index_name,
    shard_paths,
)

# (ranges) -> their bytes, concatenated: uint8 [sum of lengths], of one shard file; a range is
# (offset, length)
Read = Callable[[list[tuple[int, int]]], np.ndarray]
LOCAL_PROTOCOLS = (None, "file", "local")


Segment = Callable[[int, int], "np.ndarray | FetchedSegment"]  # (offset, length) -> segment


def _mapped(path: Path, shape: tuple[int, ...], shard: IndexedShard) -> Segment:
    """Segments of the local shard file `path` (indexed as `shard`): read-only views of its
    memory map, each checked against its sha256 the first time this process maps it."""
    data = np.memmap(path, np.uint8, mode="r")
    unchecked = dict(zip(shard.segments, shard.segment_sha256, strict=True))

    def segment(offset: int, length: int) -> np.ndarray:
        view = data[offset : offset + length]
        digest = unchecked.pop((offset, length), None)
        if digest is not None:
            check_bytes(view, digest, f"{path} bytes {offset}-{offset + length}")
        return view.reshape(shape)

    return segment


def _remote(fs: fsspec.AbstractFileSystem, path: str, url: str, shape: tuple[int, ...]) -> Segment:
    """Segments of the file `path` of `fs` (at `url`): FetchedSegments over its byte ranges."""
    read = _fetched(fs, path, url)
    return lambda offset, length: FetchedSegment(read, offset, shape)


def _fetched(fs: fsspec.AbstractFileSystem, path: str, url: str) -> Read:
    """Reads of the file `path` of `fs` (at `url`), one byte-range request per range."""

    def read(ranges: list[tuple[int, int]]) -> np.ndarray:
        starts = [offset for offset, _ in ranges]
        ends = [offset + length for offset, length in ranges]
        try:
            parts = fs.cat_ranges([path] * len(ranges), starts, ends, on_error="raise")
        except OSError as error:
            raise ShardError(f"cannot read {url} ({error}): check the URL and network") from None
        for start, end, data in zip(starts, ends, parts, strict=True):
            if len(data) != end - start:
                raise ShardError(
                    f"{url}: bytes {start}-{end} came back as {len(data)} bytes (a truncated "
                    "file, or a server that ignores byte ranges); copy the shards again"
                )
        return np.frombuffer(b"".join(parts), np.uint8)

    return read


class FetchedSegment:
    """A segment in a remote shard, read frame by frame (see the module docstring).

    Slicing along frames, `segment[start:stop:step]`, fetches just those frames and returns
    them as a fresh uint8 [n, S, S, 3] array; `np.asarray(segment)` fetches every frame.

    Args:
        read: reads byte ranges of the segment's shard.
        offset: where the segment's raw uint8 [F, S, S, 3] bytes start in the shard.
        shape: (F, S, S, 3).
    """

    def __init__(self, read: Read, offset: int, shape: tuple[int, ...]):
        self.read, self.offset, self.shape = read, offset, tuple(shape)
        self.frame_bytes = int(np.prod(self.shape[1:]))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, frames: slice) -> np.ndarray:
        if not isinstance(frames, slice):
            raise TypeError(f"a fetched segment is sliced along its frames, not by {frames!r}")
        wanted = range(self.shape[0])[frames]
        runs = []  # (first frame, frame count) of each run of consecutive wanted frames
        for frame in wanted:
            if runs and frame == sum(runs[-1]):
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((frame, 1))
        ranges = [
            (self.offset + first * self.frame_bytes, count * self.frame_bytes)
            for first, count in runs
        ]
        data = self.read(ranges) if ranges else np.empty(0, np.uint8)
        return data.reshape(len(wanted), *self.shape[1:])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        frames = self[:]
        return frames if dtype is None else frames.astype(dtype)


class SegmentStore:
    """Pretraining segments over all shards of a split (see the module docstring).

    Args:
        index: the split's shard index.
        segments: per shard of the index, in order, a function (offset, length) -> the
            segment stored at those bytes.
        locations: per shard, its path or URL (the keys of `digests`).
    """

    def __init__(self, index: ShardIndex, segments: list[Segment], locations: list[str]):
        if np.dtype(index.dtype) != np.uint8 or len(index.shape) != 4 or index.shape[3] != 3:
            raise ShardError(
                f"the {index.split} shards hold {index.dtype} {list(index.shape)} videos, not "
                "uint8 [F, S, S, 3] segments; curate again"
            )
        self.index, self.segments, self.shape = index, segments, tuple(index.shape)
        self.ends = np.cumsum([len(shard.segments) for shard in index.shards])
        self.digests = {
            location: shard.sha256 for location, shard in zip(locations, index.shards, strict=True)
        }

    @classmethod
    def open(cls, location: str | Path, split: str = "pretrain") -> SegmentStore:
        """The segments of `split` in the folder or URL `location` (see the module docstring).

        Raises:
            FileNotFoundError: no shards (or, at a URL, no index), or a shard the index lists
                is missing; the message names the file.
            ShardError: the files are not the indexed ones (sizes differ, or a local folder
                holds shards the index does not list), a shard cannot be read in place, the
                URL cannot be opened or read.
        """
        protocol, path = fsspec.core.split_protocol(str(location))
        if protocol in LOCAL_PROTOCOLS:
            return cls._open_local(Path(path), split)
        return cls._open_remote(str(location).rstrip("/"), split)

    @classmethod
    def _open_local(cls, root: Path, split: str) -> SegmentStore:
        index_path = root / index_name(split)
        if index_path.exists():
            index = ShardIndex.from_json(index_path.read_bytes(), str(index_path))
        else:
            index = build_index(root, split)  # shards of an older curate: hashes every one
        listed = {shard.name for shard in index.shards}
        for path in shard_paths(root, split):
            if path.name not in listed:
                raise ShardError(
                    f"{path} is not in the index {index_path}: the folder changed since curate "
                    "wrote it; curate again"
                )
        paths = [root / shard.name for shard in index.shards]
        for path, shard in zip(paths, index.shards, strict=True):
            if not path.exists():
                raise FileNotFoundError(
                    f"shard {path} is missing (the index {index_path} lists it): restore it, "
                    "e.g. `dvc checkout`, or curate again"
                )
            _check_size(str(path), os.path.getsize(path), shard.bytes, str(index_path))
        shape = tuple(index.shape)
        segments = [
            _mapped(path, shape, shard) for path, shard in zip(paths, index.shards, strict=True)
        ]
        return cls(index, segments, [str(path) for path in paths])

    @classmethod
    def _open_remote(cls, url: str, split: str) -> SegmentStore:
        index_url = f"{url}/{index_name(split)}"
        with _reaching(url, split):
            fs, root = fsspec.core.url_to_fs(url)
            index = ShardIndex.from_json(fs.cat_file(f"{root}/{index_name(split)}"), index_url)
            paths = [f"{root}/{shard.name}" for shard in index.shards]
            sizes = fs.sizes(paths)
        urls = [f"{url}/{shard.name}" for shard in index.shards]
        for shard_url, size, shard in zip(urls, sizes, index.shards, strict=True):
            if size is not None:  # some filesystems (dvc://) do not know sizes before reading
                _check_size(shard_url, size, shard.bytes, index_url)
        shape = tuple(index.shape)
        segments = [_remote(fs, path, url, shape) for path, url in zip(paths, urls, strict=True)]
        return cls(index, segments, urls)

    @property
    def frames(self) -> int:
        """F, the frames of every segment."""
        return self.shape[0]

    def __len__(self) -> int:
        return int(self.ends[-1])

    def __getitem__(self, index: int) -> np.ndarray | FetchedSegment:
        """Segment `index` (0 <= index < len(self)): a read-only uint8 [F, S, S, 3] view of a
        mapped shard, or a FetchedSegment of a remote one."""
        if not 0 <= index < len(self):
            raise IndexError(f"segment {index} out of range: the store holds {len(self)}")
        shard = int(np.searchsorted(self.ends, index, side="right"))
        start = self.ends[shard - 1] if shard else 0
        offset, length = self.index.shards[shard].segments[index - start]
        return self.segments[shard](offset, length)


@contextlib.contextmanager
def _reaching(url: str, split: str) -> Iterator[None]:
    """Turn the errors of opening the shards at `url` into one message naming it and the fix."""
    try:
        yield
    except ShardError:
        raise
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"{url}: {error}; shards read from a URL need every file curate wrote, "
            f"{index_name(split)} included (an older curate wrote none): curate again and copy "
            "or push the whole shards folder"
        ) from None
    except (OSError, ValueError, ImportError) as error:
        raise ShardError(
            f"cannot read shards at {url} ({type(error).__name__}: {error}): check the URL, "
            "the network, and that the fsspec package for its protocol is installed (s3fs, "
            "gcsfs, ...)"
        ) from None


def _check_size(location: str, size: int, indexed: int, index_location: str) -> None:
    """Raise ShardError unless the shard at `location` has the `indexed` size."""
    if size != indexed:
        raise ShardError(
            f"{location} has {size} bytes, the index {index_location} says {indexed}: the file "
            "changed since curate indexed it (truncated or replaced?); curate again"
        )
