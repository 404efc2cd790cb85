"""The pretraining data loader, built from torchdata.nodes, with a resumable state.

Every random choice is a pure function of (seed, step, slot), where `slot` is a row of the
global batch: which pretraining segment, the window, crop and flip of the clip taken from it
(fourds.data.augment), and which tokens are masked. So

- data-parallel ranks need no coordination: each one produces only its own slots, and a run on
  any number of processes sees exactly the batches of a single-process run;
- the loader's state is just the next (step, slot) to produce; it goes into the checkpoint and
  a resumed run continues with the very batch it would have seen.

Pipeline: BatchSlots (this rank's slots, in order) -> ParallelMapper (clip sampling and mask
sampling in worker threads) -> Batcher -> Mapper (collate; for a CUDA device into pinned memory,
then copied to the GPU on a side stream) -> Prefetcher -> Loader. The Prefetcher's thread runs
the collate and the copy, so a batch's copy overlaps the steps before it; the training loop
waits for it with `on_compute_stream` (no host synchronisation).

The loader only copies each clip's window out of its segment and draws the clip's view (crop
box and flip); the training step applies the views on the model's device
(`fourds.data.augment.crop_resize_flip`), where the per-pixel work is cheapest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gin
import numpy as np
import torch
from torchdata.nodes import BaseNode, Batcher, Loader, Mapper, ParallelMapper, Prefetcher

from fourds.data.augment import ClipSampler

MaskSampler = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


@dataclasses.dataclass(frozen=True)
class Slot:
    """One row of one global batch."""

    step: int
    row: int


class BatchSlots(BaseNode[Slot]):
    """Source node: this rank's rows of every global batch, steps 0 to `steps` - 1.

    State: {"step": next step, "row": next row}.
    """

    def __init__(self, steps: int, rows: range):
        super().__init__()
        self.steps, self.rows = steps, rows
        self._step, self._index = 0, 0

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        if initial_state is None:
            self._step, self._index = 0, 0
        else:
            self._step = initial_state["step"]
            self._index = self.rows.index(initial_state["row"])

    def next(self) -> Slot:
        if self._step >= self.steps:
            raise StopIteration
        slot = Slot(self._step, self.rows[self._index])
        self._index += 1
        if self._index == len(self.rows):
            self._step, self._index = self._step + 1, 0
        return slot

    def get_state(self) -> dict[str, Any]:
        return {"step": self._step, "row": self.rows[self._index]}


@dataclasses.dataclass(frozen=True)
class ClipExample:
    """Turns a slot into a training example; runs in the loader's worker threads.

    Args:
        segments: the N curated pretraining segments, each uint8 [F, S, S, 3], by index
            (`len()` and `segments[i]`): a `fourds.data.segments.SegmentStore`, which maps
            them from the shards, or an array [N, F, S, S, 3].
        sample_clip: (segment, generator) -> (window uint8 [T, S, S, 3], view int64 [5]): the
            clip's frames and its crop box and flip (F >= sample_clip.span).
        seed: the run's seed.
        sample_masks: (batch, generator) -> (keep_index [batch, n_keep], mask [batch, N]),
            e.g. `MaskedAutoencoder.sample_masks`.
    """

    segments: Sequence[np.ndarray] | np.ndarray
    sample_clip: ClipSampler
    seed: int
    sample_masks: MaskSampler

    def __call__(self, slot: Slot) -> dict[str, torch.Tensor]:
        """-> {"video": uint8 [T, S, S, 3] window, "view": int64 [5] (see
        fourds.data.augment.VIEW_FIELDS), "keep_index": [n_keep], "mask": bool [N]}."""
        rng = np.random.default_rng([self.seed, slot.step, slot.row])
        segment = self.segments[rng.integers(len(self.segments))]
        window, view = self.sample_clip(segment, rng)
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        keep_index, mask = self.sample_masks(1, generator)
        return {
            "video": window,
            "view": view,
            "keep_index": keep_index[0],
            "mask": mask[0],
        }


def collate(
    examples: list[dict[str, torch.Tensor]], pin_memory: bool = False
) -> dict[str, torch.Tensor]:
    """Stack examples: video uint8 [B, T, H, W, 3], view [B, 5], keep_index [B, n_keep],
    mask [B, N].

    pin_memory: stack straight into page-locked host memory (needs CUDA), from which the
    training loop copies to the GPU asynchronously; one copy either way.
    """
    batch = {}
    for key in examples[0]:
        parts = [example[key] for example in examples]
        shape, dtype = (len(parts), *parts[0].shape), parts[0].dtype
        batch[key] = torch.stack(parts, out=torch.empty(shape, dtype=dtype, pin_memory=pin_memory))
    return batch


class CopyToDevice:
    """Copy a pinned host batch to a CUDA device on this copier's own stream (the calling
    thread's side stream, created on first use), without waiting for the copy: the batch gets
    a "ready" CUDA event, recorded after the copies, for `on_compute_stream`."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stream: torch.cuda.Stream | None = None

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        if self.stream is None:
            self.stream = torch.cuda.Stream(self.device)
        with torch.cuda.stream(self.stream):
            moved: dict[str, Any] = {
                key: value.to(self.device, non_blocking=True) for key, value in batch.items()
            }
            moved["ready"] = torch.cuda.Event()
            moved["ready"].record(self.stream)
        return moved


def on_compute_stream(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The batch, usable on the current stream: for a batch from `CopyToDevice`, the current
    stream waits for its copy (on the device; the host goes on) and the tensors are marked as
    used there, so the allocator keeps their memory until that stream is done with them. A
    host batch is returned as it is."""
    ready = batch.pop("ready", None)
    if ready is None:
        return batch
    stream = torch.cuda.current_stream()
    stream.wait_event(ready)
    for value in batch.values():
        value.record_stream(stream)
    return batch


@gin.configurable("pretrain_loader")
def pretrain_loader(
    example: ClipExample,
    steps: int,
    rows: range,
    workers: int,
    prefetch: int,
    device: torch.device | None = None,
) -> Loader[dict[str, Any]]:
    """One batch per step holding this rank's `rows` of the global batch.

    Args:
        example: makes one example from a slot.
        steps: total training steps (the loader stops after the last one).
        rows: this rank's rows of the global batch, e.g. range(0, 8) of 16 on rank 0 of 2.
        workers: worker threads for `example` (0: in the main thread).
        prefetch: batches prepared ahead of the training loop.
        device: a CUDA device: batches are assembled in page-locked memory and copied to it
            ahead of the step (`CopyToDevice`; pass each to `on_compute_stream`). Otherwise
            batches stay on the host.
    """
    on_gpu = device is not None and torch.device(device).type == "cuda"
    node: BaseNode = BatchSlots(steps, rows)
    node = ParallelMapper(node, example, num_workers=workers, method="thread", in_order=True)
    node = Batcher(node, batch_size=len(rows), drop_last=True)
    node = Mapper(node, functools.partial(collate, pin_memory=on_gpu))
    if on_gpu:
        node = Mapper(node, CopyToDevice(torch.device(device)))
    node = Prefetcher(node, prefetch_factor=prefetch)
    return Loader(node, restart_on_stop_iteration=False)


@contextlib.contextmanager
def joined_loader_threads(timeout: float = 60.0) -> Iterator[None]:
    """On leaving, however the block ends, collect the loaders made inside it and wait for the
    loader threads started inside it.

    torchdata stops a pipeline's worker threads (daemon threads, which the interpreter does not
    wait for) only when its nodes are collected, and they sit in reference cycles; a process
    that exits while one is still inside torch aborts in C++ teardown ("terminate called
    without an active exception"). When the block raises, the finished frames of the traceback
    (which would keep the loaders alive) drop their local variables first. Other threads
    started inside (tqdm's monitor, DVCLive's) live on as their libraries intend.
    """
    before = set(threading.enumerate())
    try:
        yield
    except BaseException as error:
        traceback.clear_frames(error.__traceback__)
        raise
    finally:
        gc.collect()
        for thread in set(threading.enumerate()) - before:
            if _runs_torchdata(thread):
                thread.join(timeout)


def _runs_torchdata(thread: threading.Thread) -> bool:
    """Whether `thread` runs a torchdata function (the thread's target: threading keeps it as
    `_target` until the thread ends)."""
    target = getattr(thread, "_target", None)
    return getattr(target, "__module__", "").startswith("torchdata.")
