import numpy as np
import pytest
import torch

from fourds.data.augment import ClipSampler, crop_box, resize

SEGMENT = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
ASPECT = (0.75, 1.333)


def windows(segment: np.ndarray, frames: int, stride: int) -> list[np.ndarray]:
    """Every plain window of a segment, unflipped then flipped: [T, S, S, 3] each."""
    span = (frames - 1) * stride + 1
    plain = [segment[start : start + span : stride] for start in range(len(segment) - span + 1)]
    return plain + [window[:, :, ::-1] for window in plain]


def test_a_clip_is_a_function_of_the_generator_seed():
    sample = ClipSampler(4, 2, (0.5, 1.0), ASPECT)
    clip = sample(SEGMENT, np.random.default_rng(3))
    assert clip.dtype == torch.uint8 and clip.shape == (4, 16, 16, 3) and clip.is_contiguous()
    assert torch.equal(clip, sample(SEGMENT, np.random.default_rng(3)))
    others = [sample(SEGMENT, np.random.default_rng(seed)) for seed in range(4, 12)]
    assert not any(torch.equal(clip, other) for other in others)


def test_without_crops_a_clip_is_a_plain_window_at_a_random_start_maybe_flipped():
    sample = ClipSampler(4, 2, (1.0, 1.0), ASPECT)  # the aspect range alone crops nothing
    candidates = windows(SEGMENT, 4, 2)
    picked = []
    for seed in range(100):
        clip = sample(SEGMENT, np.random.default_rng(seed)).numpy()
        (index,) = [i for i, window in enumerate(candidates) if np.array_equal(clip, window)]
        picked.append(index)
    assert set(picked) == set(range(len(candidates)))  # every start (6), flipped or not


def test_a_crop_is_the_box_resized_back_to_the_frame():
    sample = ClipSampler(3, 1, (0.3, 0.6), ASPECT)
    for seed in range(10):
        rng = np.random.default_rng(seed)  # the documented order: start, crop box, flip
        start = int(rng.integers(len(SEGMENT) - 2))
        top, left, height, width = crop_box(16, rng, (0.3, 0.6), ASPECT)
        box = SEGMENT[start : start + 3, top : top + height, left : left + width]
        expected = torch.from_numpy(resize(box, 16))
        expected = expected.flip(2) if rng.random() < 0.5 else expected
        assert torch.equal(sample(SEGMENT, np.random.default_rng(seed)), expected)
        assert (height, width) != (16, 16)


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


def test_resize_is_bilinear_on_pixel_centres():
    ramp = np.broadcast_to(np.array([0, 100], np.uint8).reshape(1, 1, 2, 1), (1, 2, 2, 3))
    resized = resize(ramp, 4)
    assert resized.dtype == np.uint8 and resized.shape == (1, 4, 4, 3)
    assert resized[0, :, :, 0].tolist() == [[0, 25, 75, 100]] * 4


def test_resize_matches_torchs_bilinear_interpolation():
    video = np.random.default_rng(0).integers(0, 256, size=(3, 37, 45, 3), dtype=np.uint8)
    frames = torch.from_numpy(video).permute(0, 3, 1, 2).float()
    expected = torch.nn.functional.interpolate(
        frames, size=(64, 64), mode="bilinear", align_corners=False
    )
    expected = expected.permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(resize(video, 64), expected, atol=0.5 + 1e-3)
