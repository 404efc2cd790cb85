"""The 4D task metrics against small cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fourds.evaluate.metrics import (
    align_depth,
    box_iou,
    box_tracking_metrics,
    pose_auc,
    pose_metrics,
    tapvid_metrics,
    top_k_accuracy,
    translation_angle_degrees,
)

RANGE = (0.001, 80.0)


def test_depth_alignment_recovers_scale_and_shift():
    target = np.array([1.0, 2.0, 4.0, 0.0])  # the last pixel is invalid and ignored
    np.testing.assert_allclose(align_depth(2.0 * target, target, "median", RANGE)[:3], target[:3])
    shifted = 0.5 * target + 1.0
    np.testing.assert_allclose(align_depth(shifted, target, "least_squares", RANGE)[:3], target[:3])
    np.testing.assert_array_equal(align_depth(shifted, target, "none", RANGE), shifted)
    with pytest.raises(ValueError, match="not one of"):
        align_depth(target, target, "affine", RANGE)


@pytest.fixture
def two_tracks():
    """Two points over 4 frames; every ground-truth position is (0, 0), so each predicted
    position's distance is its x. Point 0 is queried at frame 0, point 1 at frame 1."""
    query = np.array([[0, 0.0, 0.0], [1, 0.0, 0.0]])
    gt_occluded = np.array([[False, False, True, False], [False, False, False, False]])
    gt_tracks = np.zeros((2, 4, 2))
    pred_tracks = np.zeros((2, 4, 2))
    pred_tracks[0, :, 0] = [0.0, 0.5, 0.0, 3.0]
    pred_tracks[1, :, 0] = [0.0, 0.0, 1.5, 10.0]
    pred_occluded = np.array([[False, False, False, False], [False, False, False, True]])
    return query, gt_occluded, gt_tracks, pred_occluded, pred_tracks


def test_tapvid_metrics_first_mode_by_hand(two_tracks):
    metrics = tapvid_metrics(*two_tracks, query_mode="first")
    # Scored (point, frame): (0,1) (0,2) (0,3) (1,2) (1,3); occlusion wrong at (0,2) and (1,3).
    assert metrics["occlusion_accuracy"] == pytest.approx(3 / 5)
    # Visible pairs (0,1) (0,3) (1,2) (1,3) at distances 0.5, 3, 1.5, 10.
    expected_within = {1: 1 / 4, 2: 2 / 4, 4: 3 / 4, 8: 3 / 4, 16: 1.0}
    # d=1: TP (0,1); FP (0,2) (0,3) (1,2); FN (0,3) (1,2) (1,3)          -> 1/7
    # d=2: TP (0,1) (1,2); FP (0,2) (0,3); FN (0,3) (1,3)                 -> 2/6
    # d=4, 8, 16: TP (0,1) (0,3) (1,2); FP (0,2); FN (1,3), predicted occluded -> 3/5
    expected_jaccard = {1: 1 / 7, 2: 2 / 6, 4: 3 / 5, 8: 3 / 5, 16: 3 / 5}
    for threshold in (1, 2, 4, 8, 16):
        assert metrics[f"pts_within_{threshold}"] == pytest.approx(expected_within[threshold])
        assert metrics[f"jaccard_{threshold}"] == pytest.approx(expected_jaccard[threshold])
    assert metrics["average_pts_within_thresh"] == pytest.approx(0.65)
    assert metrics["average_jaccard"] == pytest.approx((1 / 7 + 1 / 3 + 9 / 5) / 5)


def test_tapvid_strided_mode_also_scores_frames_before_the_query(two_tracks):
    metrics = tapvid_metrics(*two_tracks, query_mode="strided")
    # Adds (1, 0): visible, predicted visible at distance 0.
    assert metrics["occlusion_accuracy"] == pytest.approx(4 / 6)
    assert metrics["pts_within_1"] == pytest.approx(2 / 5)


def rotation_y(degrees: float) -> np.ndarray:
    angle = np.radians(degrees)
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def camera(degrees: float, translation) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rotation_y(degrees), translation
    return pose


def test_pose_metrics_by_hand():
    gt = np.stack([np.eye(4), camera(10.0, [1.0, 0.0, 0.0])])
    pred = np.stack([np.eye(4), camera(15.0, [2.0, 0.0, 0.0])])
    metrics = pose_metrics(pred, gt)
    assert metrics["rotation_error"] == pytest.approx(5.0)
    assert metrics["translation_error"] == pytest.approx(0.0, abs=1e-6)
    # Centres -R^T t; scaled to the true mean distance both lie on the unit circle, 5 deg apart.
    assert metrics["end_point_error"] == pytest.approx(2 * np.sin(np.radians(2.5)))
    assert metrics["auc_3"] == pytest.approx(0.0)
    assert metrics["auc_5"] == pytest.approx(0.0)  # an error of 5 is not below 5
    assert metrics["auc_15"] == pytest.approx(10 / 15)
    assert metrics["auc_30"] == pytest.approx(25 / 30)


def test_pose_auc_by_hand():
    # Errors 1 and 4 at a 3 degree limit: the fraction below x is 0 up to 1, then 1/2 up to 3:
    # area 2 * 1/2 = 1 over 3.
    assert pose_auc(np.array([1.0, 4.0]), 3.0) == pytest.approx(1 / 3)
    assert pose_auc(np.array([0.0]), 3.0) == 1.0


def test_a_zero_predicted_translation_is_90_degrees_off():
    # What a zero-initialised head outputs: no direction, scored as 90 degrees, not NaN.
    assert translation_angle_degrees(np.zeros(3), np.array([1.0, 0, 0])) == pytest.approx(90.0)
    gt = np.stack([np.eye(4), camera(0.0, [1.0, 0.0, 0.0])])
    pred = np.stack([np.eye(4), camera(0.0, [0.0, 0.0, 0.0])])
    metrics = pose_metrics(pred, gt)
    assert metrics["translation_error"] == pytest.approx(90.0)
    assert metrics["auc_30"] == 0.0


def test_all_pairs_pose_metrics_by_hand():
    # Three frames turning 0, 10, 30 degrees about y, camera centre fixed; prediction 0, 10, 20.
    gt = np.stack([camera(a, [0.0, 0.0, 0.0]) for a in (0.0, 10.0, 30.0)])
    pred = np.stack([camera(a, [0.0, 0.0, 0.0]) for a in (0.0, 10.0, 20.0)])
    # first: pairs (0,1) (0,2) with errors 0, 10; all: also (1,2) with error 10.
    assert pose_metrics(pred, gt, "first")["rotation_error"] == pytest.approx(5.0)
    assert pose_metrics(pred, gt, "all")["rotation_error"] == pytest.approx(20 / 3)
    with pytest.raises(ValueError, match="pose pairs 'some'"):
        pose_metrics(pred, gt, "some")


def test_pose_rotation_error_tolerates_slightly_non_orthonormal_matrices():
    gt = np.stack([np.eye(4), camera(0.0, [0.0, 0.0, 1.0])])
    pred = gt.copy()
    pred[1, :3, :3] *= 1 + 1e-7
    assert pose_metrics(pred, gt)["rotation_error"] == pytest.approx(0.0, abs=0.1)


def test_pose_of_a_camera_that_does_not_move_is_scored_on_rotation_alone():
    gt = np.stack([np.eye(4), camera(10.0, [0.0, 0.0, 0.0])])  # a pan: the eye stays put
    pred = np.stack([np.eye(4), camera(10.0, [0.0, 0.0, 0.5])])
    metrics = pose_metrics(pred, gt)
    assert np.isnan(metrics["translation_error"])  # no baseline, no direction to compare
    assert metrics["rotation_error"] == pytest.approx(0.0, abs=1e-5)
    # No scale alignment without a baseline: the predicted centre is 0.5 from the true one.
    assert metrics["end_point_error"] == pytest.approx(0.5)
    assert metrics["auc_5"] == pytest.approx(1.0, abs=2e-3)


def test_box_iou_and_tracking_miou_by_hand():
    assert box_iou(np.array([0.0, 0, 2, 2]), np.array([1.0, 1, 3, 3])) == pytest.approx(1 / 7)
    assert box_iou(np.array([0.0, 0, 1, 1]), np.array([2.0, 2, 3, 3])) == 0.0
    gt = np.array([[[0.0, 0, 2, 2], [1, 1, 3, 3], [np.nan] * 4]])
    pred = np.array([[[5.0, 5, 6, 6], [0, 0, 2, 2], [0, 0, 2, 2]]])
    visible = np.array([[True, True, False]])
    # Frame 0 is given (not scored), frame 2 is not visible: only frame 1 counts.
    assert box_tracking_metrics(pred, gt, visible)["miou"] == pytest.approx(1 / 7)


def test_box_success_rates_by_hand():
    box = [0.0, 0, 4, 4]
    gt = np.array([[box] * 4, [box] * 4])
    pred = gt.copy()
    pred[0, 1] = [0, 0, 4, 2]  # IoU 0.5: not above 0.5 (strict, as GOT-10k)
    pred[0, 2] = [0, 0, 4, 3.2]  # IoU 0.8
    pred[1, 1] = [0, 0, 4, 2.8]  # IoU 0.7
    visible = np.ones((2, 4), bool)
    metrics = box_tracking_metrics(pred, gt, visible)
    # object 0 scores frames 1-3 with IoU 0.5, 0.8, 1; object 1 with 0.7, 1, 1.
    assert metrics["success_50"] == pytest.approx((2 / 3 + 1) / 2)
    assert metrics["success_75"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert metrics["miou"] == pytest.approx((2.3 / 3 + 2.7 / 3) / 2)


def test_top_k_accuracy_by_hand():
    logits = np.array([[1.0, 2.0], [3.0, 0.0], [0.0, 1.0]])
    assert top_k_accuracy(logits, np.array([1, 0, 0]), 1) == pytest.approx(2 / 3)
    # with 2 classes (<= 5) every label is in the top 5: 1 by definition
    assert top_k_accuracy(logits, np.array([1, 0, 0]), 5) == 1.0
    # ties count against the label: equal logits are never right at top-1
    assert top_k_accuracy(np.zeros((2, 3)), np.array([0, 2]), 1) == 0.0
    logits = np.arange(7.0)[None].repeat(2, 0)  # class 6 scores highest
    assert top_k_accuracy(logits, np.array([2, 1]), 5) == pytest.approx(0.5)
