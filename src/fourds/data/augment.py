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
computed in float64 on the host and rounded to float32, then a + (b - a) * w along rows, then
along columns, each a separate elementwise kernel (never fused, never compiled), and
round-half-even to uint8. IEEE float32 addition and multiplication are exactly rounded, so the
clips are bit for bit those of the CPU loader that did this in numpy before (a test keeps that
implementation as its oracle), on a CPU or a GPU.
"""

from __future__ import annotations

import dataclasses
import math

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
    offset: int, length: int, size: int, reverse: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear resampling of pixels [offset, offset + length) of an axis to `size` pixels.

    Returns, for each output position: the two source pixels it blends (int64 [size], absolute
    positions on the axis) and the weight of the second (float32 [size]); pixel centres are
    aligned as in PyTorch's bilinear interpolation with align_corners=False. `reverse` lists
    the outputs right to left (a flip). With length == size every weight is 0: a copy.
    """
    position = np.maximum((np.arange(size) + 0.5) * (length / size) - 0.5, 0.0)
    first = np.minimum(np.floor(position).astype(np.int64), length - 1)
    second = np.minimum(first + 1, length - 1)
    weight = (position - first).astype(np.float32)
    taps = (first + offset, second + offset, weight)
    return tuple(tap[::-1].copy() for tap in taps) if reverse else taps


def _blend_clip(clip: torch.Tensor, taps: tuple[np.ndarray, ...], dim: int) -> torch.Tensor:
    """clip [T, H, W, 3] (uint8 or float32) resampled along `dim` (1: rows, 2: columns) to
    the taps' S positions (`linear_taps`, relative to the clip): float32, a + (b - a) * w."""
    first, second, weight = (torch.from_numpy(tap).to(clip.device) for tap in taps)
    a = clip.index_select(dim, first).float()
    b = clip.index_select(dim, second).float()
    return a + (b - a) * weight.view(-1, *[1] * (clip.dim() - dim - 1))


def _blend_batch(
    frames: torch.Tensor, first: torch.Tensor, second: torch.Tensor, weight: torch.Tensor, dim: int
) -> torch.Tensor:
    """frames float32 [B, T, H, W, 3] resampled along `dim` (2: rows, 3: columns) to the S
    positions of first, second (int64 [B, S], absolute) and weight (float32 [B, S]):
    a + (b - a) * w."""
    shape = [len(frames), 1, 1, 1, 1]
    shape[dim] = first.shape[1]
    index_shape = list(frames.shape)
    index_shape[dim] = first.shape[1]
    a = frames.gather(dim, first.view(shape).expand(index_shape))
    b = frames.gather(dim, second.view(shape).expand(index_shape))
    return a + (b - a) * weight.view(shape)


@torch.compiler.disable  # a compiler may fuse the blend into FMAs: other bits than the CPU's
def crop_resize_flip(
    windows: torch.Tensor, views: torch.Tensor, batched: bool | None = None
) -> torch.Tensor:
    """Apply each clip's view: crop, bilinear resize back to S x S, flip.

    Two schedules of the same float32 operations, bit for bit equal: a loop over the clips
    that crops before resampling (on the CPU it does the least work: 2.2 against 3.2 ms a clip
    at 8x64x64, 60 against 96 ms at 16x224x224, one thread), or one gather per axis for the
    whole batch (on a GPU: a fixed number of kernel launches whatever the batch size).

    Args:
        windows: uint8 [B, T, S, S, 3] on the training device.
        views: int64 [B, 5] on the CPU, VIEW_FIELDS per clip (from `ClipSampler`).
        batched: the schedule; None: batched on CUDA, per clip elsewhere.

    Returns:
        uint8 [B, T, S, S, 3] on the windows' device.
    """
    size = windows.shape[2]
    if batched is None:
        batched = windows.is_cuda
    if not batched:
        clips = torch.empty_like(windows)
        for clip, window, (top, left, height, width, flip) in zip(
            clips, windows, views.tolist(), strict=True
        ):
            crop = window[:, top : top + height, left : left + width]
            rows = _blend_clip(crop, linear_taps(0, height, size, reverse=False), dim=1)
            frames = _blend_clip(rows, linear_taps(0, width, size, reverse=bool(flip)), dim=2)
            clip.copy_(frames.round_().clamp_(0, 255))
        return clips
    taps = [[], []]  # per clip: (first, second, weight) of the rows, then of the columns
    for top, left, height, width, flip in views.tolist():
        taps[0].append(linear_taps(top, height, size, reverse=False))
        taps[1].append(linear_taps(left, width, size, reverse=bool(flip)))
    frames = windows.float()
    for dim, axis in ((2, taps[0]), (3, taps[1])):
        first, second, weight = (
            torch.from_numpy(np.stack(parts)).to(windows.device)
            for parts in zip(*axis, strict=True)
        )
        frames = _blend_batch(frames, first, second, weight, dim)
    return frames.round_().clamp_(0, 255).to(torch.uint8)
