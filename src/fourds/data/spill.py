"""Arrays that leave host memory past a budget: a split's clips and its cached features are built
one item at a time; past `HostBudget.max_bytes` they are appended to a file of the budget's
scratch folder and handed back memory-mapped, so that a split of any size runs in bounded
memory. The values are the same either way: only where the bytes live changes.

Files are written sequentially (`file.write`), never through a writable mapping, so building an
array holds at most the budget plus one item in memory; reading a mapped array back pages it in
through the kernel's page cache, which the kernel reclaims under pressure.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np


@dataclasses.dataclass(frozen=True)
class HostBudget:
    """Where arrays too large for host memory go.

    folder: a scratch folder for their files (None: every array stays in memory).
    max_bytes: the bytes one array may hold in memory before it moves to a file there.
    """

    folder: Path | None
    max_bytes: int

    def spills(self, nbytes: int) -> bool:
        """Whether an array of `nbytes` goes to disk."""
        return self.folder is not None and nbytes > self.max_bytes

    def new_file(self, stem: str) -> Path:
        """A new empty file of the scratch folder, named after `stem`."""
        handle, path = tempfile.mkstemp(prefix=f"{stem}-", suffix=".bin", dir=self.folder)
        os.close(handle)
        return Path(path)


IN_MEMORY = HostBudget(None, 0)


def mapped(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """The raw C-order array of `shape` in file `path`, memory-mapped copy-on-write (writable in
    this process, the file never changes)."""
    if 0 in shape:  # numpy cannot map an empty file
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="c", shape=shape)


class StackBuilder:
    """Arrays added one by one, stacked along a new first axis: [N, *shape].

    `padded`: the arrays [n_i, *shape] differ in their first length and are stacked padded with
    zeros to the largest, [N, max n_i, *shape] (per-point and per-object ground truth).

    They stay in memory until their bytes pass the budget; then they and every later one are
    appended to a file, and `result` maps it. Arrays of strings or objects (labels) stay in
    memory. The result equals `np.stack` of the arrays (padded as said) in values, dtype and shape.
    """

    def __init__(self, budget: HostBudget, name: str, padded: bool = False):
        self.budget, self.name, self.padded = budget, name, padded
        self.pending: list[np.ndarray] = []
        self.lengths: list[int] = []
        self.nbytes = 0
        self.file: BinaryIO | None = None
        self.path: Path | None = None
        self.layout: tuple[np.dtype, tuple[int, ...]] | None = None

    def add(self, array: np.ndarray) -> None:
        """Append one array: [*shape], or [n, *shape] when padded."""
        array = np.asarray(array)  # tobytes() writes C order whatever its layout
        self._check(array)
        self.lengths.append(len(array) if self.padded else 1)
        if self.file is not None:
            self.file.write(array.tobytes())
            return
        self.pending.append(array)
        self.nbytes += array.nbytes
        if array.dtype.kind not in "OUS" and self.budget.spills(self.nbytes):
            self.path = self.budget.new_file(self.name)
            self.file = open(self.path, "wb")  # noqa: SIM115 (closed by result)
            for held in self.pending:
                self.file.write(held.tobytes())
            self.pending = []

    def _check(self, array: np.ndarray) -> None:
        """Raise ValueError where `array` does not stack with the first one (as np.stack)."""
        kind = array.dtype.kind  # strings stack at their longest length, as np.stack does
        dtype = np.dtype(kind) if kind in "OUS" else array.dtype
        layout = (dtype, array.shape[1:] if self.padded else array.shape)
        if self.layout is None:
            self.layout = layout
        elif layout != self.layout:
            raise ValueError(
                f"{self.name}: an array of {layout[0]} {layout[1]} does not stack with the "
                f"first, {self.layout[0]} {self.layout[1]}"
            )

    def result(self) -> np.ndarray:
        """The stacked arrays [N, ...]: in memory, or mapped from the scratch file."""
        if self.layout is None:
            raise ValueError(f"{self.name}: no array to stack")
        if self.file is None:
            return _stack_padded(self.pending) if self.padded else np.stack(self.pending)
        self.file.close()
        dtype, shape = self.layout
        flat = mapped(self.path, dtype, (sum(self.lengths), *shape))
        if not self.padded:
            return flat
        return self._pad(flat)

    def _pad(self, flat: np.ndarray) -> np.ndarray:
        """The rows of `flat` [sum n_i, *shape] as [N, max n_i, *shape], written to a second file
        one array at a time (zeros after each array's n_i rows)."""
        dtype, shape = self.layout
        count = max(self.lengths)
        path = self.budget.new_file(f"{self.name}-padded")
        with open(path, "wb") as handle:
            start = 0
            for length in self.lengths:
                row = np.zeros((count, *shape), dtype)
                row[:length] = flat[start : start + length]
                handle.write(row.tobytes())
                start += length
        return mapped(path, dtype, (len(self.lengths), count, *shape))


def _stack_padded(arrays: list[np.ndarray]) -> np.ndarray:
    """Arrays [n_i, ...] stacked padded with zeros to the largest n_i: [N, max n_i, ...]."""
    count = max(len(array) for array in arrays)
    padded = np.zeros((len(arrays), count, *arrays[0].shape[1:]), arrays[0].dtype)
    for row, array in enumerate(arrays):
        padded[row, : len(array)] = array
    return padded
