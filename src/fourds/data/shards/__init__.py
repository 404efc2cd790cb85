"""The shard formats: what `curate` hands every later stage.

The splits are SPLITS. A split is a set of shard files `<split>-<k>.<npz|tar>` in one folder,
shard k holding N clips as plain arrays (no pickled objects). T is curate.clip_frames in the readout
splits (fixed clips, every curate.frame_stride-th frame) and curate.pretrain_frames in the
pretrain split (segments of consecutive frames that pretraining samples windows from):

    video          [N, T, S, S, 3] uint8
    and when the source has ground truth (fourds.data.corpus), at the clip resolution:
    depth          [N, T, S, S] float16 metres
    instances      [N, T, S, S] uint8
    intrinsics     [N, T, 3, 3] float32 pixels
    extrinsics     [N, T, 4, 4] float32 world-to-camera (OpenCV axes)
    tracks         [N, P, T, 2] float32 pixels;  visible [N, P, T] bool
    boxes          [N, M, T, 4] float32 pixels;  box_visible [N, M, T] bool
    track_instance [N, P]
    label          [N] str: the clip's class name

Shard formats (curate.pretrain_format; the readout splits are always npz):

    npz         `<split>-<k>.npz`, one np.savez file per shard, each array above stacked as an
                uncompressed `<key>.npy` member (fourds.data.shards.npz)
    webdataset  `<split>-<k>.tar`, a WebDataset tar per shard: per row a sample of `.npy`
                members, one per array without the N axis, and the row's manifest fields as
                `.json` (fourds.data.shards.tar)

Curate also writes `pretrain-index.json` beside the pretrain shards (fourds.data.shards.index):
each shard's size and sha256 and where each segment's video data lies in it, from which
`fourds.data.segments` maps or fetches single segments of either format.

This package is the one entry point: `ShardWriter` writes shards (atomically, shard by shard),
`shard_paths` lists them, `load_split` reads a split back (either format) after checking it
against its index, `shard_digests` hashes them, `write_index` / `ShardIndex` write and read the
index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fourds.data.shards import npz, tar
from fourds.data.shards.index import (
    IndexedShard,
    ShardIndex,
    build_index,
    check_bytes,
    index_name,
    verify_shards,
    write_index,
)
from fourds.data.shards.spec import (
    FORMATS,
    GROUND_TRUTH_KEYS,
    OPTIONAL_PER_CLIP,
    PER_CLIP,
    PER_FRAME,
    PER_TRACK,
    SPLITS,
    Row,
    ShardError,
    shard_digests,
    shard_name,
    shard_paths,
)

__all__ = [
    "FORMATS",
    "GROUND_TRUTH_KEYS",
    "OPTIONAL_PER_CLIP",
    "PER_CLIP",
    "PER_FRAME",
    "PER_TRACK",
    "SPLITS",
    "IndexedShard",
    "ShardError",
    "ShardIndex",
    "ShardWriter",
    "build_index",
    "index_name",
    "load_split",
    "shard_digests",
    "check_bytes",
    "shard_paths",
    "verify_shards",
    "write_index",
]

WRITERS = {"npz": npz.write, "webdataset": tar.write}
READERS = {".npz": npz.read, ".tar": tar.read}


class ShardWriter:
    """Collects rows of one split and writes them `per_shard` at a time as `fmt` shards (a
    key of FORMATS)."""

    def __init__(self, out_dir: Path, split: str, per_shard: int, fmt: str = "npz"):
        self.out_dir, self.split, self.per_shard, self.fmt = Path(out_dir), split, per_shard, fmt
        self.rows: list[Row] = []
        self.shards = 0

    @property
    def next_location(self) -> tuple[str, int]:
        """(shard file name, row) the next added row will have."""
        return shard_name(self.split, self.shards, self.fmt), len(self.rows)

    def add(self, row: dict[str, np.ndarray], fields: dict | None = None) -> None:
        """Add one row (key -> array without the leading N axis) and its manifest fields
        (stored with it by the webdataset format)."""
        self.rows.append((row, fields or {}))
        if len(self.rows) == self.per_shard:
            self.flush()

    def flush(self) -> None:
        """Write the rows collected so far as the next shard."""
        if not self.rows:
            return
        keys = self.rows[0][0].keys()
        if any(row.keys() != keys for row, _ in self.rows):
            raise ShardError(f"split {self.split}: some sources have ground truth and some not")
        name, _ = self.next_location
        WRITERS[self.fmt](self.out_dir / name, self.rows)
        self.rows, self.shards = [], self.shards + 1


def load_split(
    shard_dir: str | Path, split: str, keys: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """All clips of one split as arrays (see the module docstring for keys and shapes).

    keys: the arrays to read (None: all); the others are not read from disk.

    Every shard is first checked against the split's index (`verify_shards`, once per process).

    Raises:
        FileNotFoundError: the split has no shards.
        ShardError: a shard is truncated, changed or corrupted (the message names it).
        KeyError: a shard lacks one of `keys`.
    """
    shards = shard_paths(shard_dir, split)
    if not shards:
        raise FileNotFoundError(
            f"no shards for split {split!r} in {shard_dir}: run `dvc repro curate` first"
        )
    verify_shards(shard_dir, split)
    parts = [READERS[shard.suffix](shard, keys) for shard in shards]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
