"""Pretraining clips sampled as MAE-ST samples them from longer video.

`ClipSampler` turns a curated pretraining segment into one training clip: a window of `frames`
frames, every `stride`-th one, at a random start; a random crop (area and aspect-ratio jitter)
resized back to the segment's size with bilinear interpolation; a horizontal flip with
probability 1/2. Every draw comes from the generator it is given, in a fixed order, so a clip is
a pure function of the generator's seed (the loader seeds it from (seed, step, slot)).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch


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


def _linear_taps(source: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each of `size` output positions along an axis of `source` pixels: the two source
    pixels [size] it blends and the weight [size] of the second (pixel centres aligned, as
    PyTorch's bilinear interpolation with align_corners=False)."""
    position = np.maximum((np.arange(size) + 0.5) * (source / size) - 0.5, 0.0)
    first = np.minimum(np.floor(position).astype(np.int64), source - 1)
    second = np.minimum(first + 1, source - 1)
    return first, second, (position - first).astype(np.float32)


def resize(video: np.ndarray, size: int) -> np.ndarray:
    """uint8 [T, H, W, 3] -> uint8 [T, size, size, 3], bilinear, rounded to the nearest integer.

    Numpy only: the loader's worker threads call it beside the training step, and a torch
    kernel here would share torch's intra-op thread pool with the step (on a busy 2-core
    machine that made each clip ~70x slower).
    """
    rows_a, rows_b, row_weight = _linear_taps(video.shape[1], size)
    cols_a, cols_b, col_weight = _linear_taps(video.shape[2], size)
    frames = video.astype(np.float32)
    frames = frames[:, rows_a] + (frames[:, rows_b] - frames[:, rows_a]) * row_weight[:, None, None]
    frames = (
        frames[:, :, cols_a] + (frames[:, :, cols_b] - frames[:, :, cols_a]) * col_weight[:, None]
    )
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class ClipSampler:
    """Samples a training clip from a pretraining segment (see the module docstring).

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

    def __call__(self, segment: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """uint8 [F, S, S, 3] segment (F >= span) -> uint8 [frames, S, S, 3] clip, a tensor of
        its own (it never shares memory with `segment`, which may be read-only).

        Draws from `rng`, in order: the start, the crop (area, aspect, top, left), the flip.
        """
        size = segment.shape[1]
        start = int(rng.integers(len(segment) - self.span + 1))
        top, left, height, width = crop_box(size, rng, self.crop_scale, self.crop_aspect)
        window = segment[start : start + self.span : self.stride]
        clip = window[:, top : top + height, left : left + width]
        if (height, width) != (size, size):
            clip = resize(clip, size)  # the crop is never larger: upsampling, no aliasing
        if rng.random() < 0.5:
            clip = clip[:, :, ::-1]
        # a copy unless the clip is already a fresh array: a window of a read-only
        # memory-mapped segment (fourds.data.segments) must not become the training tensor
        return torch.from_numpy(np.require(clip, requirements=("C", "W")))
