"""Pretraining clips sampled as MAE-ST samples them from longer video, augmented on the device.

Sampling and pixel work are split where they are cheapest:

- `ClipSampler` (the loader's worker threads, CPU) draws a clip's *view* of a curated
  pretraining segment: a window of `frames` frames, every `stride`-th one, at a random start;
  a random crop box (area and aspect-ratio jitter); a horizontal flip with probability 1/2. It
  copies out the window, uint8 at the segment's size, and returns the view as five integers.
  Every draw comes from the generator it is given, in a fixed order, so a clip is a pure
  function of the generator's seed (the loader seeds it from (seed, step, slot)).
- `crop_resize_flip` (the training step, on the model's device) applies a batch of views: each
  crop box is resized back to the frame size with bilinear interpolation (PyTorch's
  align_corners=False convention), rounded back to uint8, and flipped where drawn.

The resize is the same sequence of float32 operations whatever the device: blend weights
computed in float64 on the views' device and rounded to float32, then a + (b - a) * w along
rows, then along columns, each a separate elementwise kernel (never fused, never compiled), and
round-half-even to uint8. IEEE float32 addition and multiplication are exactly rounded, so the
clips are bit for bit those of the CPU loader that did this in numpy before (a test keeps that
implementation as its oracle), on a CPU or a GPU.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import numpy as np
import torch

VIEW_FIELDS = ("top", "left", "height", "width", "flip")


def crop_box(
    size: int,
    rng: np.random.Generator,
    scale: tuple[float, float],
    aspect: tuple[float, float],
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop of a size x size frame.

    The crop's area is a fraction of the frame drawn uniformly from `scale`; its aspect ratio
    (width / height) is drawn log-uniformly from `aspect`, then clipped to [area, 1 / area], the
    ratios at which a crop of that area fits in the frame; its position is uniform. With
    scale (1, 1) the crop is the whole frame.
    """
    area = rng.uniform(*scale)
    ratio = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
    ratio = min(max(ratio, area), 1.0 / area)
    height = min(size, max(1, round(size * math.sqrt(area / ratio))))
    width = min(size, max(1, round(size * math.sqrt(area * ratio))))
    top = int(rng.integers(size - height + 1))
    left = int(rng.integers(size - width + 1))
    return top, left, height, width


@dataclasses.dataclass(frozen=True)
class ClipSampler:
    """Draws a training clip's window and view from a pretraining segment (see the module
    docstring).

    Args:
        frames: frames per clip (curate.clip_frames).
        stride: the clip takes every stride-th frame of the segment (pretrain.frame_stride).
        crop_scale: (low, high) area fraction of the crop; (1, 1) turns crops off.
        crop_aspect: (low, high) aspect ratio (width / height) of the crop.
    """

    frames: int
    stride: int
    crop_scale: tuple[float, float]
    crop_aspect: tuple[float, float]

    @property
    def span(self) -> int:
        """Segment frames one clip covers."""
        return (self.frames - 1) * self.stride + 1

    def __call__(
        self, segment: np.ndarray, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 [F, S, S, 3] segment (F >= span) -> (window, view):

        window: uint8 [frames, S, S, 3], a tensor of its own (it never shares memory with
            `segment`, which may be a read-only memory map);
        view: int64 [5], VIEW_FIELDS: the crop box (top, left, height, width) and flip (0/1),
            for `crop_resize_flip`.

        Draws from `rng`, in order: the start, the crop (area, aspect, top, left), the flip.
        """
        size = segment.shape[1]
        start = int(rng.integers(len(segment) - self.span + 1))
        box = crop_box(size, rng, self.crop_scale, self.crop_aspect)
        flip = int(rng.random() < 0.5)
        window = np.array(segment[start : start + self.span : self.stride])
        return torch.from_numpy(window), torch.tensor([*box, flip])


def linear_taps(
    offset: torch.Tensor, length: torch.Tensor, size: int, reverse: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear resampling of pixels [offset, offset + length) of an axis to `size` pixels, for
    B clips at once, computed on the inputs' device (no copy from the host on a GPU).

    Args:
        offset, length: int64 [B], the first pixel and the number of pixels of each clip's crop.
        reverse: [B] bool or 0/1, list the outputs right to left (a flip).

    Returns:
        for each output position: the two source pixels it blends (int64 [B, size], absolute
        positions on the axis) and the weight of the second (float32 [B, size]); pixel centres
        are aligned as in PyTorch's bilinear interpolation with align_corners=False. Positions
        are computed in float64 and the weight rounded once to float32, the same operations
        on any device. With length == size every weight is 0: a copy.
    """
    length = length.view(-1, 1)
    centres = torch.arange(size, dtype=torch.float64, device=length.device) + 0.5
    position = (centres * (length.double() / size) - 0.5).clamp_(min=0.0)  # [B, size]
    first = torch.minimum(position.floor().long(), length - 1)
    second = torch.minimum(first + 1, length - 1)
    weight = (position - first).float()
    taps = (first + offset.view(-1, 1), second + offset.view(-1, 1), weight)
    flip = reverse.view(-1, 1).bool()
    return tuple(torch.where(flip, tap.flip(1), tap) for tap in taps)


def _blend_clip(
    clip: torch.Tensor, first: torch.Tensor, second: torch.Tensor, weight: torch.Tensor, dim: int
) -> torch.Tensor:
    """clip [T, H, W, 3] (uint8 or float32) resampled along `dim` (1: rows, 2: columns) to the
    S positions of first, second (int64 [S]) and weight (float32 [S]): float32 a + (b - a) * w
    (index_select: on the CPU cheaper than `_blend`'s gather)."""
    a = clip.index_select(dim, first).float()
    b = clip.index_select(dim, second).float()
    return a + (b - a) * weight.view(-1, *[1] * (clip.dim() - dim - 1))


def _blend(
    frames: torch.Tensor, first: torch.Tensor, second: torch.Tensor, weight: torch.Tensor, dim: int
) -> torch.Tensor:
    """frames [B, T, H, W, 3] (uint8 or float32) resampled along `dim` (2: rows, 3: columns) to
    the S positions of first, second (int64 [B, S], absolute) and weight (float32 [B, S]):
    float32 a + (b - a) * w."""
    shape = [len(frames), 1, 1, 1, 1]
    shape[dim] = first.shape[1]
    index_shape = list(frames.shape)
    index_shape[dim] = first.shape[1]
    a = frames.gather(dim, first.view(shape).expand(index_shape)).float()
    b = frames.gather(dim, second.view(shape).expand(index_shape)).float()
    return a + (b - a) * weight.view(shape)


@torch.compiler.disable  # a compiler may fuse the blend into FMAs: other bits than the CPU's
def crop_resize_flip(
    windows: torch.Tensor, views: torch.Tensor, batched: bool | None = None
) -> torch.Tensor:
    """Apply each clip's view: crop, bilinear resize back to S x S, flip.

    Two schedules of the same float32 operations, bit for bit equal: a loop over the clips
    that crops before resampling (on the CPU it does the least work: 2.2 against 3.2 ms a clip
    at 8x64x64, 60 against 96 ms at 16x224x224, one thread), or one gather per axis for the
    whole batch (on a GPU: a fixed number of kernel launches whatever the batch size, and no
    host synchronisation when the views are on the device).

    Args:
        windows: uint8 [B, T, S, S, 3] on the training device.
        views: int64 [B, 5], VIEW_FIELDS per clip (from `ClipSampler`), on the host or on the
            windows' device.
        batched: the schedule; None: batched on CUDA, per clip elsewhere.

    Returns:
        uint8 [B, T, S, S, 3] on the windows' device.
    """
    if batched is None:
        batched = windows.is_cuda
    views = views.to(windows.device)
    if batched:
        return batched_crop(windows, views)
    size = windows.shape[2]
    _, _, height, width, flip = views.unbind(1)  # each [B]
    zero = torch.zeros_like(flip)  # no offset (a cropped clip), no flip (rows)
    clips = torch.empty_like(windows)
    row_taps = linear_taps(zero, height, size, zero)  # relative to each crop: [B, S] each
    column_taps = linear_taps(zero, width, size, flip)
    for index, (top_, left_, height_, width_) in enumerate(views[:, :4].tolist()):
        crop = windows[index, :, top_ : top_ + height_, left_ : left_ + width_]
        rows = _blend_clip(crop, *(tap[index] for tap in row_taps), dim=1)
        frames = _blend_clip(rows, *(tap[index] for tap in column_taps), dim=2)
        clips[index] = frames.round_().clamp_(0, 255)
    return clips


def batch_taps(windows: torch.Tensor, views: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The resampling taps of every clip's view, absolute on each axis: (row first, row second,
    row weight, column first, column second, column weight), each [B, S] (`linear_taps`), for
    windows [B, T, S, S, 3] and views int64 [B, 5] on one device."""
    size = windows.shape[2]
    top, left, height, width, flip = views.unbind(1)  # each [B]
    zero = torch.zeros_like(flip)  # no flip of the rows
    return (*linear_taps(top, height, size, zero), *linear_taps(left, width, size, flip))


def resample_batch(windows: torch.Tensor, *taps: torch.Tensor) -> torch.Tensor:
    """windows uint8 [B, T, S, S, 3] resampled by `batch_taps`' six [B, S] taps, rows then
    columns, rounded to uint8 [B, T, S, S, 3]: multiplies, adds and gathers only."""
    frames = _blend(windows, *taps[:3], dim=2)
    frames = _blend(frames, *taps[3:], dim=3)
    return frames.round_().clamp_(0, 255).to(torch.uint8)


def batched_crop(windows: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
    """`crop_resize_flip`'s batched schedule: one gather per axis for the whole batch.
    windows uint8 [B, T, S, S, 3] and views int64 [B, 5] on one device -> uint8 [B, T, S, S, 3]."""
    return resample_batch(windows, *batch_taps(windows, views))


@functools.cache
def _fused_resample() -> Callable[..., torch.Tensor]:
    """`resample_batch` compiled once per process, without floating-point contraction."""
    return torch.compile(resample_batch, fullgraph=True, options={"emulate_precision_casts": True})


def fused_crop(windows: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
    """`batched_crop` with its resampling compiled by Inductor into fused CUDA kernels, bit for
    bit the eager clips: the taps (a float64 division) are computed eagerly, and with
    `emulate_precision_casts` Inductor turns Triton's floating-point contraction off, so each
    multiply and add of the blend rounds apart as the eager kernels do (no FMA;
    tests/gpu/test_augment.py checks the bits). Eager, the batched schedule makes about 14
    full-clip fp32 passes: 4DS-B's step at 128 clips on an H100 spent 16 of its 71 ms in them
    (docs/research/gpu-step.md). On the CPU Inductor's C++ is built without contraction too
    (`-ffp-contract=off`, its default), but the per-clip schedule does less work there.

    Args:
        windows: uint8 [B, T, S, S, 3]; views: int64 [B, 5], on the windows' device.

    Returns:
        uint8 [B, T, S, S, 3].
    """
    return _fused_resample()(windows, *batch_taps(windows, views))
