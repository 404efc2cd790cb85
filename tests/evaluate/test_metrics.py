import numpy as np
import pytest

from fourds.evaluate.metrics import depth_metrics


def test_depth_metrics_by_hand():
    target = np.array([1.0, 2.0, 4.0, 0.0])  # last pixel invalid
    prediction = np.array([1.5, 2.0, 3.0, 9.0])
    metrics = depth_metrics(prediction, target)
    # |d - d*| / d*: 0.5, 0, 0.25 -> mean 0.25
    assert metrics["abs_rel"] == pytest.approx(0.25)
    # ratios 1.5, 1, 4/3 -> only 1.0 < 1.25
    assert metrics["delta1"] == pytest.approx(1 / 3)
    # squared errors 0.25, 0, 1 -> sqrt(1.25 / 3)
    assert metrics["rmse"] == pytest.approx(np.sqrt(1.25 / 3))


def test_perfect_prediction():
    target = np.random.default_rng(0).uniform(1, 10, size=(2, 3, 4))
    assert depth_metrics(target, target) == {"abs_rel": 0.0, "delta1": 1.0, "rmse": 0.0}


def test_non_positive_prediction_is_never_within_delta():
    metrics = depth_metrics(np.array([0.0, 1.0]), np.array([1.0, 1.0]))
    assert metrics["delta1"] == 0.5


def test_no_valid_pixels_is_an_error():
    with pytest.raises(ValueError, match="no valid ground-truth depth"):
        depth_metrics(np.ones(3), np.zeros(3))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        depth_metrics(np.ones(3), np.ones(4))
