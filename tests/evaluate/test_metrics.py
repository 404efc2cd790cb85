"""Depth metrics against cases worked out by hand (the monodepth2 / Marigold protocol)."""

import numpy as np
import pytest

from fourds.evaluate.metrics import DepthProtocol, depth_image_metrics, depth_metrics

RANGE = (0.001, 80.0)


def test_depth_metrics_by_hand():
    target = np.array([1.0, 2.0, 4.0, 0.0])  # last pixel invalid
    prediction = np.array([1.5, 2.0, 3.0, 9.0])
    metrics = depth_metrics(prediction, target, RANGE)
    # |d - d*| / d*: 0.5, 0, 0.25 -> mean 0.25
    assert metrics["abs_rel"] == pytest.approx(0.25)
    # (d - d*)^2 / d*: 0.25, 0, 0.25 -> mean 1/6
    assert metrics["sq_rel"] == pytest.approx(1 / 6)
    # squared errors 0.25, 0, 1 -> sqrt(1.25 / 3)
    assert metrics["rmse"] == pytest.approx(np.sqrt(1.25 / 3))
    # log ratios log 1.5, 0, log 0.75
    assert metrics["rmse_log"] == pytest.approx(np.sqrt((np.log(1.5) ** 2 + np.log(0.75) ** 2) / 3))
    # ratios 1.5, 1, 4/3: below 1.25 only 1; below 1.5625 all three
    assert metrics["delta1"] == pytest.approx(1 / 3)
    assert metrics["delta2"] == pytest.approx(1.0)
    assert metrics["delta3"] == pytest.approx(1.0)


def test_delta2_and_delta3_thresholds_by_hand():
    target = np.ones(4)
    prediction = np.array([1.2, 1.5, 1.9, 2.0])  # 1.25^2 = 1.5625, 1.25^3 = 1.953125
    metrics = depth_metrics(prediction, target, RANGE)
    assert (metrics["delta1"], metrics["delta2"], metrics["delta3"]) == (0.25, 0.5, 0.75)


def test_perfect_prediction():
    target = np.random.default_rng(0).uniform(1, 10, size=(2, 3, 4))
    metrics = depth_metrics(target, target, RANGE)
    assert metrics == {
        "abs_rel": 0.0, "sq_rel": 0.0, "rmse": 0.0, "rmse_log": 0.0,
        "delta1": 1.0, "delta2": 1.0, "delta3": 1.0,
    }  # fmt: skip


def test_predictions_are_clamped_to_the_valid_range():
    # A non-positive prediction becomes the minimum depth (finite errors, not inf / NaN); one
    # beyond the maximum becomes the maximum.
    metrics = depth_metrics(np.array([0.0, -3.0, 100.0]), np.array([1.0, 1.0, 8.0]), (0.5, 10.0))
    # clamped 0.5, 0.5, 10: |.| / d* = 0.5, 0.5, 0.25
    assert metrics["abs_rel"] == pytest.approx(1.25 / 3)
    assert metrics["delta1"] == 0.0 and metrics["delta2"] == pytest.approx(1 / 3)
    assert np.isfinite(metrics["rmse_log"])


def test_ground_truth_outside_the_range_is_not_scored():
    target = np.array([1.0, 20.0, 0.0005])
    metrics = depth_metrics(np.array([2.0, 1.0, 1.0]), target, (0.001, 10.0))
    assert metrics["abs_rel"] == pytest.approx(1.0)  # only the first pixel counts


def test_per_image_averaging_differs_from_pooling_by_hand():
    # Image 0: one valid pixel, abs_rel 1; image 1: three valid pixels, abs_rel 0.
    target = np.array([[[1.0, 0.0], [0.0, 0.0]], [[2.0, 2.0], [2.0, 0.0]]])
    prediction = np.array([[[2.0, 5.0], [5.0, 5.0]], [[2.0, 2.0], [2.0, 9.0]]])
    images = depth_image_metrics(prediction, target, RANGE)
    np.testing.assert_allclose(images["abs_rel"], [1.0, 0.0])
    assert np.mean(images["abs_rel"]) == pytest.approx(0.5)  # per image
    assert depth_metrics(prediction, target, RANGE)["abs_rel"] == pytest.approx(0.25)  # pooled


def test_an_image_without_valid_pixels_is_nan_per_image():
    images = depth_image_metrics(np.ones((2, 1, 2)), np.array([[[0.0, 0.0]], [[1.0, 1.0]]]), RANGE)
    assert np.isnan(images["abs_rel"][0]) and images["abs_rel"][1] == 0.0


def test_no_valid_pixels_is_an_error():
    with pytest.raises(ValueError, match="no valid ground-truth depth"):
        depth_metrics(np.ones(3), np.zeros(3), RANGE)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        depth_metrics(np.ones(3), np.ones(4), RANGE)


@pytest.mark.parametrize(
    "args, match",
    [
        (("affine", "per_image", RANGE), "alignment 'affine'"),
        (("none", "per_pixel", RANGE), "averaging 'per_pixel'"),
        (("none", "pooled", (1.0, 1.0)), r"range \[1.0, 1.0\]"),
    ],
)
def test_a_bad_depth_protocol_is_refused(args, match):
    with pytest.raises(ValueError, match=match):
        DepthProtocol(*args)
