"""Clip sampling (host) and crop/resize/flip (device): clips are functions of the generator
seed, and bit for bit what the earlier numpy loader made."""

import numpy as np
import pytest
import torch

from fourds.data.augment import (
    ClipSampler,
    crop_box,
    crop_resize_flip,
    fused_crop,
    linear_taps,
)

SEGMENT = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
ASPECT = (0.75, 1.333)


def numpy_resize(video: np.ndarray, size: int) -> np.ndarray:
    """The loader's former CPU resize, kept as the oracle: uint8 [T, H, W, 3] -> uint8
    [T, size, size, 3], bilinear (align_corners=False), float32 a + (b - a) * w along rows then
    columns, rounded half to even."""

    def taps(source: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        position = np.maximum((np.arange(size) + 0.5) * (source / size) - 0.5, 0.0)
        first = np.minimum(np.floor(position).astype(np.int64), source - 1)
        second = np.minimum(first + 1, source - 1)
        return first, second, (position - first).astype(np.float32)

    rows_a, rows_b, row_weight = taps(video.shape[1])
    cols_a, cols_b, col_weight = taps(video.shape[2])
    frames = video.astype(np.float32)
    frames = frames[:, rows_a] + (frames[:, rows_b] - frames[:, rows_a]) * row_weight[:, None, None]
    frames = (
        frames[:, :, cols_a] + (frames[:, :, cols_b] - frames[:, :, cols_a]) * col_weight[:, None]
    )
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def numpy_clip(sample: ClipSampler, segment: np.ndarray, seed: int) -> np.ndarray:
    """The clip the former numpy loader made for this generator seed (same draws, same order:
    start, crop box, flip; resize on the host)."""
    rng = np.random.default_rng(seed)
    size = segment.shape[1]
    start = int(rng.integers(len(segment) - sample.span + 1))
    top, left, height, width = crop_box(size, rng, sample.crop_scale, sample.crop_aspect)
    clip = segment[start : start + sample.span : sample.stride]
    clip = clip[:, top : top + height, left : left + width]
    if (height, width) != (size, size):
        clip = numpy_resize(clip, size)
    return clip[:, :, ::-1] if rng.random() < 0.5 else clip


def sampled_clip(
    sample: ClipSampler, segment: np.ndarray, seed: int, batched: bool | None = None
) -> torch.Tensor:
    """uint8 [T, S, S, 3]: the clip's window and view, applied as the training step does."""
    window, view = sample(segment, np.random.default_rng(seed))
    return crop_resize_flip(window[None], view[None], batched)[0]


def windows(segment: np.ndarray, frames: int, stride: int) -> list[np.ndarray]:
    """Every plain window of a segment, unflipped then flipped: [T, S, S, 3] each."""
    span = (frames - 1) * stride + 1
    plain = [segment[start : start + span : stride] for start in range(len(segment) - span + 1)]
    return plain + [window[:, :, ::-1] for window in plain]


def test_the_sampler_returns_a_fresh_window_and_its_view():
    sample = ClipSampler(4, 2, (0.5, 1.0), ASPECT)
    window, view = sample(SEGMENT, np.random.default_rng(3))
    assert window.dtype == torch.uint8 and window.shape == (4, 16, 16, 3)
    assert window.is_contiguous() and not np.shares_memory(window.numpy(), SEGMENT)
    assert view.dtype == torch.int64 and view.shape == (5,)
    top, left, height, width, flip = view.tolist()
    assert 0 <= top <= 16 - height and 0 <= left <= 16 - width and flip in (0, 1)
    assert any(np.array_equal(window.numpy(), plain) for plain in windows(SEGMENT, 4, 2)[:6])


def test_a_clip_is_a_function_of_the_generator_seed():
    sample = ClipSampler(4, 2, (0.5, 1.0), ASPECT)
    clip = sampled_clip(sample, SEGMENT, 3)
    assert clip.dtype == torch.uint8 and clip.shape == (4, 16, 16, 3)
    assert torch.equal(clip, sampled_clip(sample, SEGMENT, 3))
    others = [sampled_clip(sample, SEGMENT, seed) for seed in range(4, 12)]
    assert not any(torch.equal(clip, other) for other in others)


def test_without_crops_a_clip_is_a_plain_window_at_a_random_start_maybe_flipped():
    sample = ClipSampler(4, 2, (1.0, 1.0), ASPECT)  # the aspect range alone crops nothing
    candidates = windows(SEGMENT, 4, 2)
    picked = []
    for seed in range(100):
        clip = sampled_clip(sample, SEGMENT, seed).numpy()
        (index,) = [i for i, window in enumerate(candidates) if np.array_equal(clip, window)]
        picked.append(index)
    assert set(picked) == set(range(len(candidates)))  # every start (6), flipped or not


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize(
    ("frames", "stride", "scale", "aspect"),
    [(3, 1, (0.3, 0.6), ASPECT), (4, 2, (0.08, 1.0), (0.5, 2.0)), (4, 3, (1.0, 1.0), ASPECT)],
)
def test_clips_are_bit_for_bit_those_of_the_numpy_loader(frames, stride, scale, aspect, batched):
    segment = np.random.default_rng(1).integers(0, 256, (12, 24, 24, 3), dtype=np.uint8)
    sample = ClipSampler(frames, stride, scale, aspect)
    for seed in range(40):
        expected = numpy_clip(sample, segment, seed)
        actual = sampled_clip(sample, segment, seed, batched).numpy()
        assert np.array_equal(actual, expected), seed


@pytest.mark.parametrize("batched", [False, True])
def test_a_batch_applies_each_clips_own_view(batched):
    sample = ClipSampler(3, 1, (0.2, 0.9), ASPECT)
    drawn = [sample(SEGMENT, np.random.default_rng(seed)) for seed in range(6)]
    windows, views = torch.stack([w for w, _ in drawn]), torch.stack([v for _, v in drawn])
    for seed, clip in enumerate(crop_resize_flip(windows, views, batched)):
        assert torch.equal(clip, sampled_clip(sample, SEGMENT, seed))


@pytest.mark.slow  # an Inductor compile, about 5 s
def test_the_fused_crop_gives_the_eager_clips_bit_for_bit():
    # The compiled schedule that a compiling CUDA run uses (fourds.train.step.view_crop), here
    # through Inductor's C++; tests/gpu/test_augment.py checks its Triton kernels on CUDA.
    sample = ClipSampler(3, 1, (0.08, 1.0), (0.5, 2.0))
    drawn = [sample(SEGMENT, np.random.default_rng(seed)) for seed in range(8)]
    windows, views = torch.stack([w for w, _ in drawn]), torch.stack([v for _, v in drawn])
    assert torch.equal(fused_crop(windows, views), crop_resize_flip(windows, views))


def test_taps_resample_the_box_on_pixel_centres_and_reverse_for_a_flip():
    # Two clips at once: the same box, the second flipped.
    offset, length, flip = torch.tensor([3, 3]), torch.tensor([2, 2]), torch.tensor([0, 1])
    first, second, weight = linear_taps(offset, length, size=4, reverse=flip)
    assert first.tolist() == [[3, 3, 3, 4], [4, 3, 3, 3]]
    assert second.tolist() == [[4, 4, 4, 4], [4, 4, 4, 4]]
    # the last blends pixel 4 with itself
    assert weight.tolist() == [[0.0, 0.25, 0.75, 0.25], [0.25, 0.75, 0.25, 0.0]]


def test_a_crop_is_bilinear_like_torchs_interpolation():
    windows_ = torch.from_numpy(SEGMENT[None, :2])  # [1, 2, 16, 16, 3]
    view = torch.tensor([[2, 5, 9, 7, 0]])
    frames = windows_[0, :, 2:11, 5:12].permute(0, 3, 1, 2).float()
    expected = torch.nn.functional.interpolate(
        frames, size=(16, 16), mode="bilinear", align_corners=False
    ).permute(0, 2, 3, 1)
    actual = crop_resize_flip(windows_, view)[0].float()
    assert (actual - expected).abs().max() <= 0.5 + 1e-3


@pytest.mark.parametrize(("scale", "aspect"), [((0.5, 1.0), ASPECT), ((0.2, 0.3), (0.5, 2.0))])
def test_crop_boxes_keep_their_area_and_aspect_ranges_inside_the_frame(scale, aspect):
    rng = np.random.default_rng(0)
    boxes = np.array([crop_box(64, rng, scale, aspect) for _ in range(500)])
    top, left, height, width = boxes.T
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + height <= 64).all() and (left + width <= 64).all()
    area = height * width / 64**2
    assert area.min() > scale[0] - 0.03 and area.max() < scale[1] + 0.03
    assert area.max() - area.min() > 0.8 * (scale[1] - scale[0])  # the range is covered
    ratio = width / height
    assert ratio.min() > aspect[0] - 0.05 and ratio.max() < aspect[1] + 0.05
    assert len(set(zip(top, left, strict=True))) > 100  # positions vary


def test_full_area_crops_are_the_whole_frame_whatever_the_aspect_range():
    rng = np.random.default_rng(0)
    assert {crop_box(16, rng, (1.0, 1.0), (0.5, 2.0)) for _ in range(50)} == {(0, 0, 16, 16)}
