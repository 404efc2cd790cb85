"""The shard format: what `curate` hands every later stage.

The splits are SPLITS. A split is a set of files `<split>-<k>.npz` in one folder, shard k
holding N clips as plain arrays (no pickled objects). T is curate.clip_frames in the readout
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

`ShardWriter` writes them (atomically, shard by shard), `shard_paths` lists them, `load_split`
reads them back, `shard_digests` hashes them for run records and resume fingerprints.
Pretraining does not load its split: `fourds.data.segments` memory-maps the pretrain shards'
`video` arrays, which np.savez stores uncompressed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fourds.atomic import atomic_path, file_digest

SPLITS = ("pretrain", "readout-train", "readout-test")

# Ground-truth keys by where the time axis is: first (per frame), second (per track or body,
# then per frame) or absent (per clip).
PER_FRAME = ("depth", "instances", "intrinsics", "extrinsics")
PER_TRACK = ("tracks", "visible", "boxes", "box_visible")
PER_CLIP = ("track_instance", "label")
GROUND_TRUTH_KEYS = PER_FRAME + PER_TRACK + PER_CLIP


class ShardError(ValueError):
    """Shards that cannot be written or used as asked: clips of one split that cannot share a
    shard (some with ground truth, some without), or pretrain segments shorter than a window."""


class ShardWriter:
    """Collects clips of one split and writes them `per_shard` at a time."""

    def __init__(self, out_dir: Path, split: str, per_shard: int):
        self.out_dir, self.split, self.per_shard = Path(out_dir), split, per_shard
        self.rows: list[dict[str, np.ndarray]] = []
        self.shards = 0

    @property
    def next_location(self) -> tuple[str, int]:
        """(shard file name, row) the next added clip will have."""
        return f"{self.split}-{self.shards:03d}.npz", len(self.rows)

    def add(self, row: dict[str, np.ndarray]) -> None:
        """Add one clip (key -> array without the leading N axis)."""
        self.rows.append(row)
        if len(self.rows) == self.per_shard:
            self.flush()

    def flush(self) -> None:
        """Write the clips collected so far as the next shard."""
        if not self.rows:
            return
        keys = self.rows[0].keys()
        if any(row.keys() != keys for row in self.rows):
            raise ShardError(f"split {self.split}: some sources have ground truth and some not")
        arrays = {key: np.stack([row[key] for row in self.rows]) for key in keys}
        name, _ = self.next_location
        with atomic_path(self.out_dir / name) as partial, open(partial, "wb") as handle:
            np.savez(handle, **arrays)
        self.rows, self.shards = [], self.shards + 1


def shard_paths(shard_dir: str | Path, split: str) -> list[Path]:
    """The shard files of `split` in `shard_dir`, in order (empty if there are none)."""
    return sorted(Path(shard_dir).glob(f"{split}-*.npz"))


def shard_digests(paths: list[Path]) -> dict[str, str]:
    """str(path) -> sha256 of each shard file."""
    return {str(path): file_digest(path) for path in paths}


def load_split(
    shard_dir: str | Path, split: str, keys: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """All clips of one split as arrays (see the module docstring for keys and shapes).

    keys: the arrays to read (None: all); the others are not read from disk.

    Raises:
        FileNotFoundError: the split has no shards.
        KeyError: a shard lacks one of `keys`.
    """
    shards = shard_paths(shard_dir, split)
    if not shards:
        raise FileNotFoundError(
            f"no shards for split {split!r} in {shard_dir}: run `dvc repro curate` first"
        )
    parts = []
    for shard in shards:
        with np.load(shard, allow_pickle=False) as data:
            missing = sorted(set(keys or ()) - set(data.files))
            if missing:
                raise KeyError(f"{shard} has no {missing} (it has {sorted(data.files)})")
            parts.append({key: data[key] for key in keys or data.files})
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
