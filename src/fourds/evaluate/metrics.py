"""Benchmark metrics on numpy arrays. Each function documents its shapes and conventions."""

from __future__ import annotations

import numpy as np


def depth_metrics(prediction: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Depth errors over valid ground-truth pixels, pooled over every pixel given.

    Args:
        prediction: predicted depth, any shape, same units as `target` (no alignment applied).
        target: ground-truth depth, same shape; pixels with target <= 0 or non-finite are invalid.

    Returns:
        abs_rel: mean(|d - d*| / d*)
        delta1: fraction of pixels with max(d / d*, d* / d) < 1.25
        rmse: sqrt(mean((d - d*)^2))
    """
    prediction = np.asarray(prediction, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {prediction.shape} and target {target.shape} differ in shape")
    valid = np.isfinite(target) & (target > 0)
    if not valid.any():
        raise ValueError("no valid ground-truth depth (all target values <= 0 or non-finite)")
    d, gt = prediction[valid], target[valid]
    with np.errstate(divide="ignore"):
        ratio = np.maximum(d / gt, gt / np.where(d > 0, d, np.nan))
    return {
        "abs_rel": float(np.mean(np.abs(d - gt) / gt)),
        "delta1": float(np.mean(np.nan_to_num(ratio, nan=np.inf) < 1.25)),
        "rmse": float(np.sqrt(np.mean((d - gt) ** 2))),
    }


DEPTH_ALIGNMENTS = ("none", "median", "least_squares")


def align_depth(prediction: np.ndarray, target: np.ndarray, mode: str) -> np.ndarray:
    """Align a depth prediction to the ground truth before scoring (monocular protocols).

    Args:
        prediction, target: same shape; target pixels <= 0 or non-finite are ignored.
        mode: "none"; "median" (scale by median(d*) / median(d)); "least_squares" (the scale s
            and shift b minimising sum((s d + b - d*)^2) over valid pixels).

    Returns the aligned prediction, same shape.
    """
    prediction = np.asarray(prediction, dtype=np.float64)
    valid = np.isfinite(target) & (target > 0)
    if mode == "none":
        return prediction
    d, gt = prediction[valid], np.asarray(target, dtype=np.float64)[valid]
    if mode == "median":
        return prediction * (np.median(gt) / np.median(d))
    if mode == "least_squares":
        design = np.stack([d, np.ones_like(d)], axis=1)
        (scale, shift), *_ = np.linalg.lstsq(design, gt, rcond=None)
        return scale * prediction + shift
    raise ValueError(f"alignment {mode!r} is not one of {list(DEPTH_ALIGNMENTS)}")


TAPVID_THRESHOLDS = (1, 2, 4, 8, 16)  # pixels, at 256x256


def tapvid_metrics(
    query_points: np.ndarray,
    gt_occluded: np.ndarray,
    gt_tracks: np.ndarray,
    pred_occluded: np.ndarray,
    pred_tracks: np.ndarray,
    query_mode: str,
) -> dict[str, float]:
    """TAP-Vid metrics of one video, as the benchmark defines them.

    Args:
        query_points: [N, 3] (t, y, x) of each query; t is the query frame.
        gt_occluded, pred_occluded: [N, T] bool.
        gt_tracks, pred_tracks: [N, T, 2] (x, y) raster pixels of the video at 256x256.
        query_mode: "first" scores frames after the query frame; "strided" every frame but the
            query frame.

    Returns:
        occlusion_accuracy: fraction of scored (point, frame) pairs whose occlusion is right;
        pts_within_{d}: among ground-truth-visible pairs, the fraction predicted within d px
            (strictly less than d);
        jaccard_{d}: TP / (TP + FP + FN), where TP are visible pairs predicted visible within
            d px, FP pairs predicted visible that are occluded or farther than d, FN visible
            pairs predicted occluded or farther than d;
        average_jaccard, average_pts_within_thresh: means over d in 1, 2, 4, 8, 16.
    """
    frames = gt_occluded.shape[1]
    query_frame = np.round(np.asarray(query_points)[:, 0]).astype(np.int64)[:, None]
    time = np.arange(frames)[None]
    if query_mode == "first":
        scored = time > query_frame
    elif query_mode == "strided":
        scored = time != query_frame
    else:
        raise ValueError(f"query_mode {query_mode!r} is not 'first' or 'strided'")
    gt_visible, pred_visible = ~gt_occluded, ~pred_occluded
    metrics = {
        "occlusion_accuracy": float(np.sum((gt_occluded == pred_occluded) & scored) / scored.sum())
    }
    distance = np.linalg.norm(np.asarray(pred_tracks) - np.asarray(gt_tracks), axis=-1)
    within_all, jaccard_all = [], []
    for threshold in TAPVID_THRESHOLDS:
        close = distance < threshold
        within = np.sum(close & gt_visible & scored) / np.sum(gt_visible & scored)
        true_positives = np.sum(close & gt_visible & pred_visible & scored)
        false_positives = np.sum(pred_visible & ~(gt_visible & close) & scored)
        false_negatives = np.sum(gt_visible & ~(pred_visible & close) & scored)
        jaccard = true_positives / (true_positives + false_positives + false_negatives)
        metrics[f"pts_within_{threshold}"] = float(within)
        metrics[f"jaccard_{threshold}"] = float(jaccard)
        within_all.append(within)
        jaccard_all.append(jaccard)
    metrics["average_pts_within_thresh"] = float(np.mean(within_all))
    metrics["average_jaccard"] = float(np.mean(jaccard_all))
    return metrics


def rotation_error_degrees(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Geodesic angle between rotations [..., 3, 3] -> [...] degrees.

    Matrices from files are orthonormal only to ~1e-7; the cosine is clipped to [-1, 1].
    """
    relative = np.swapaxes(pred, -1, -2) @ gt
    cosine = (np.trace(relative, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def translation_angle_degrees(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Angle between translation directions [..., 3] -> [...] degrees (scale-free)."""
    unit_pred = pred / np.linalg.norm(pred, axis=-1, keepdims=True)
    unit_gt = gt / np.linalg.norm(gt, axis=-1, keepdims=True)
    cosine = np.sum(unit_pred * unit_gt, axis=-1)
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def relative_poses(world_to_camera: np.ndarray) -> np.ndarray:
    """[T, 4, 4] world-to-camera -> [T-1, 4, 4] transforms from frame 0's camera to frame t's."""
    return world_to_camera[1:] @ np.linalg.inv(world_to_camera[0])


def pose_metrics(
    pred_world_to_camera: np.ndarray,
    gt_world_to_camera: np.ndarray,
    thresholds: tuple[float, ...] = (5.0, 15.0, 30.0),
    min_baseline: float = 1e-6,
) -> dict[str, float]:
    """Camera pose errors of one clip, over the pairs (frame 0, frame t) for t >= 1.

    Args:
        pred_world_to_camera, gt_world_to_camera: [T, 4, 4] (OpenCV axes).
        min_baseline: pairs whose true camera centres are closer than this (a static or
            panning camera) have no translation direction: they are scored on rotation alone.

    Returns:
        rotation_error: mean geodesic error of the relative rotations, degrees;
        translation_error: mean angle between relative translation directions over the pairs
            with a baseline, degrees (nan when the camera never moves);
        end_point_error: mean distance between predicted and true camera centres in frame 0's
            camera coordinates, after scaling the prediction by the ratio of mean true to mean
            predicted centre distance (monocular scale is unknown; no scaling when the camera
            never moves), in ground-truth units;
        auc_{a}: area under the curve of the fraction of pairs with max(rotation, translation
            error) below a threshold, for thresholds from 0 to a degrees, normalised to [0, 1].
    """
    pred, gt = relative_poses(pred_world_to_camera), relative_poses(gt_world_to_camera)
    rotation = rotation_error_degrees(pred[:, :3, :3], gt[:, :3, :3])
    # Camera centres of frames t in frame 0's camera coordinates: -R^T t.
    centre_pred = -np.einsum("tji,tj->ti", pred[:, :3, :3], pred[:, :3, 3])
    centre_gt = -np.einsum("tji,tj->ti", gt[:, :3, :3], gt[:, :3, 3])
    baseline = np.linalg.norm(centre_gt, axis=1)
    moved = baseline > min_baseline
    translation = np.zeros_like(rotation)
    translation[moved] = translation_angle_degrees(pred[moved, :3, 3], gt[moved, :3, 3])
    predicted = np.linalg.norm(centre_pred, axis=1).mean()
    scale = baseline.mean() / predicted if moved.any() and predicted > min_baseline else 1.0
    metrics = {
        "rotation_error": float(rotation.mean()),
        "translation_error": float(translation[moved].mean()) if moved.any() else float("nan"),
        "end_point_error": float(np.linalg.norm(scale * centre_pred - centre_gt, axis=1).mean()),
    }
    worst = np.maximum(rotation, translation)
    for limit in thresholds:
        grid = np.linspace(0.0, limit, 1001)
        accuracy = (worst[None, :] < grid[:, None]).mean(axis=1)
        metrics[f"auc_{limit:g}"] = float(np.trapezoid(accuracy, grid) / limit)
    return metrics


def box_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of boxes [..., 4] (x0, y0, x1, y1) -> [...]; 0 where the union is empty."""
    x0, y0 = np.maximum(pred[..., 0], gt[..., 0]), np.maximum(pred[..., 1], gt[..., 1])
    x1, y1 = np.minimum(pred[..., 2], gt[..., 2]), np.minimum(pred[..., 3], gt[..., 3])
    intersection = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)

    def area(box):
        return (box[..., 2] - box[..., 0]) * (box[..., 3] - box[..., 1])

    union = area(pred) + area(gt) - intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, intersection / union, 0.0)


def object_ious(pred: np.ndarray, gt: np.ndarray, gt_visible: np.ndarray) -> np.ndarray:
    """Each object's mean IoU over the later frames (t >= 1, the first box is given) where it is
    visible: pred, gt [M, T, 4]; gt_visible [M, T] bool -> [M], NaN for an object never visible
    after the first frame."""
    scored = gt_visible.copy()
    scored[:, 0] = False
    ious = box_iou(pred, np.nan_to_num(gt))
    return np.array(
        [ious[m][scored[m]].mean() if scored[m].any() else np.nan for m in range(len(gt))]
    )


def box_tracking_miou(pred: np.ndarray, gt: np.ndarray, gt_visible: np.ndarray) -> float:
    """Mean over objects of `object_ious` (objects never visible after frame 0 left out)."""
    per_object = object_ious(pred, gt, gt_visible)
    if not np.isfinite(per_object).any():
        raise ValueError("no object is visible after the first frame")
    return float(np.nanmean(per_object))


def top1_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of clips whose highest-scoring class is the label: logits [N, C], labels [N]."""
    return float(np.mean(np.argmax(logits, axis=1) == labels))
