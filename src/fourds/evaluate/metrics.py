"""Benchmark metrics on numpy arrays. Each function documents its shapes and conventions."""

from __future__ import annotations

import dataclasses

import numpy as np

from fourds.config.task_options import DEPTH_ALIGNMENTS, DEPTH_AVERAGINGS, POSE_PAIRS

DEPTH_ERRORS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")


@dataclasses.dataclass(frozen=True)
class DepthProtocol:
    """How depth is scored (readouts.depth.options: alignment, averaging, range).

    alignment: one of DEPTH_ALIGNMENTS, applied per clip before scoring (`align_depth`).
    averaging: "per_image" computes every error on each frame's valid pixels and averages over
        frames (the published protocols: monodepth2, Marigold); "pooled" pools every valid
        pixel of the test set.
    depth_range: (min, max) valid depth: ground-truth pixels outside (min, max) are not scored
        and predictions are clamped to [min, max] before scoring.
    """

    alignment: str
    averaging: str
    depth_range: tuple[float, float]

    def __post_init__(self):
        if self.alignment not in DEPTH_ALIGNMENTS:
            raise ValueError(
                f"depth alignment {self.alignment!r} is not one of {list(DEPTH_ALIGNMENTS)}"
            )
        if self.averaging not in DEPTH_AVERAGINGS:
            raise ValueError(
                f"depth averaging {self.averaging!r} is not one of {list(DEPTH_AVERAGINGS)}"
            )
        low, high = self.depth_range
        if not 0 < low < high:
            raise ValueError(f"depth range {[low, high]} must satisfy 0 < min < max")


def depth_valid(target: np.ndarray, depth_range: tuple[float, float]) -> np.ndarray:
    """Bool mask, same shape as `target`, of the ground-truth pixels inside (min, max)."""
    low, high = depth_range
    with np.errstate(invalid="ignore"):
        return np.isfinite(target) & (target > low) & (target < high)


def depth_metrics(
    prediction: np.ndarray, target: np.ndarray, depth_range: tuple[float, float]
) -> dict[str, float]:
    """Depth errors over the valid ground-truth pixels of the arrays given, pooled.

    Args:
        prediction: predicted depth, any shape, same units as `target` (no alignment applied);
            clamped to `depth_range` before scoring.
        target: ground-truth depth, same shape; pixels outside (min, max) of `depth_range` or
            non-finite are invalid.
        depth_range: (min, max) valid depth.

    Returns, over valid pixels with d the clamped prediction and d* the truth:
        abs_rel: mean(|d - d*| / d*); sq_rel: mean((d - d*)^2 / d*);
        rmse: sqrt(mean((d - d*)^2)); rmse_log: sqrt(mean((log d - log d*)^2));
        delta{k}: fraction of pixels with max(d / d*, d* / d) < 1.25^k, k = 1, 2, 3.

    Raises:
        ValueError: shapes differ, or no pixel is valid.
    """
    prediction = np.asarray(prediction, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {prediction.shape} and target {target.shape} differ in shape")
    valid = depth_valid(target, depth_range)
    if not valid.any():
        raise ValueError(f"no valid ground-truth depth (no target value inside {depth_range})")
    d, gt = np.clip(prediction[valid], *depth_range), target[valid]
    ratio = np.maximum(d / gt, gt / d)
    return {
        "abs_rel": float(np.mean(np.abs(d - gt) / gt)),
        "sq_rel": float(np.mean((d - gt) ** 2 / gt)),
        "rmse": float(np.sqrt(np.mean((d - gt) ** 2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(d) - np.log(gt)) ** 2))),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
    }


def depth_image_metrics(
    prediction: np.ndarray, target: np.ndarray, depth_range: tuple[float, float]
) -> dict[str, np.ndarray]:
    """`depth_metrics` of each image: prediction, target [..., H, W] -> name -> [...] float,
    NaN for an image without valid pixels."""
    prediction = np.asarray(prediction, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {prediction.shape} and target {target.shape} differ in shape")
    images = target.shape[:-2]
    flat_pred = prediction.reshape(-1, *target.shape[-2:])
    flat_target = target.reshape(flat_pred.shape)
    values = {name: np.full(len(flat_pred), np.nan) for name in DEPTH_ERRORS}
    for index, (d, gt) in enumerate(zip(flat_pred, flat_target, strict=True)):
        if depth_valid(gt, depth_range).any():
            for name, value in depth_metrics(d, gt, depth_range).items():
                values[name][index] = value
    return {name: value.reshape(images) for name, value in values.items()}


def align_depth(
    prediction: np.ndarray, target: np.ndarray, mode: str, depth_range: tuple[float, float]
) -> np.ndarray:
    """Align a depth prediction to the ground truth before scoring (monocular protocols).

    Args:
        prediction, target: same shape; target pixels outside `depth_range` (see
            `depth_valid`) are ignored.
        mode: "none"; "median" (scale by median(d*) / median(d)); "least_squares" (the scale s
            and shift b minimising sum((s d + b - d*)^2) over valid pixels).

    Returns the aligned prediction, same shape.
    """
    prediction = np.asarray(prediction, dtype=np.float64)
    valid = depth_valid(np.asarray(target), depth_range)
    if mode == "none" or not valid.any():
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
    """Angle between translation directions [..., 3] -> [...] degrees (scale-free).

    A zero vector has no direction: its angle to anything is 90 degrees (as the reference
    evaluations of SuperGlue and VGGT score it), never NaN.
    """
    norms = np.linalg.norm(pred, axis=-1) * np.linalg.norm(gt, axis=-1)
    dot = np.sum(pred * gt, axis=-1)
    cosine = np.divide(dot, norms, out=np.zeros_like(dot), where=norms > 0)
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def frame_pairs(frames: int, pairs: str) -> tuple[np.ndarray, np.ndarray]:
    """The (first, second) frame indices [P] a clip's poses are scored over.

    pairs: "first": (0, t) for t >= 1 (P = T - 1); "all": every (i, j) with i < j
        (P = T (T - 1) / 2), as in the all-pairs RealEstate10K evaluations.
    """
    if pairs == "first":
        return np.zeros(frames - 1, np.int64), np.arange(1, frames)
    if pairs == "all":
        return np.triu_indices(frames, k=1)
    raise ValueError(f"pose pairs {pairs!r} is not one of {list(POSE_PAIRS)}")


def relative_poses(world_to_camera: np.ndarray, first: np.ndarray, second: np.ndarray):
    """[T, 4, 4] world-to-camera -> [P, 4, 4] transforms from camera first[p] to second[p]."""
    return world_to_camera[second] @ np.linalg.inv(world_to_camera[first])


def pose_auc(errors: np.ndarray, limit: float) -> float:
    """Area under the curve of the fraction of errors [P] below x, for x from 0 to `limit`
    degrees, normalised to [0, 1]: exactly mean(max(limit - e, 0)) / limit."""
    return float(np.mean(np.clip(limit - errors, 0.0, limit)) / limit)


POSE_AUC_LIMITS = (3.0, 5.0, 15.0, 30.0)  # degrees


def pose_metrics(
    pred_world_to_camera: np.ndarray,
    gt_world_to_camera: np.ndarray,
    pairs: str = "first",
    min_baseline: float = 1e-6,
) -> dict[str, float]:
    """Camera pose errors of one clip, over its frame pairs (`frame_pairs`).

    Args:
        pred_world_to_camera, gt_world_to_camera: [T, 4, 4] (OpenCV axes).
        pairs: "first" or "all" (`frame_pairs`).
        min_baseline: pairs whose true camera centres are closer than this (a static or
            panning camera) have no translation direction: they are scored on rotation alone.

    Returns:
        rotation_error: mean geodesic error of the relative rotations, degrees;
        translation_error: mean angle between relative translation directions over the pairs
            with a baseline, degrees (nan when the camera never moves); a predicted translation
            of zero is 90 degrees from any direction;
        end_point_error: mean distance between predicted and true centres of each pair's second
            camera in its first camera's coordinates, after scaling the prediction by the ratio
            of mean true to mean predicted centre distance (monocular scale is unknown; no
            scaling when the camera never moves), in ground-truth units;
        auc_{a} for a in 3, 5, 15, 30: `pose_auc` of max(rotation, translation error) per pair.
    """
    first, second = frame_pairs(len(gt_world_to_camera), pairs)
    pred = relative_poses(pred_world_to_camera, first, second)
    gt = relative_poses(gt_world_to_camera, first, second)
    rotation = rotation_error_degrees(pred[:, :3, :3], gt[:, :3, :3])
    # Centres of the second cameras in the first cameras' coordinates: -R^T t.
    centre_pred = -np.einsum("pji,pj->pi", pred[:, :3, :3], pred[:, :3, 3])
    centre_gt = -np.einsum("pji,pj->pi", gt[:, :3, :3], gt[:, :3, 3])
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
    for limit in POSE_AUC_LIMITS:
        metrics[f"auc_{limit:g}"] = pose_auc(worst, limit)
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


BOX_SUCCESS_OVERLAPS = (0.5, 0.75)  # GOT-10k's success rates SR_0.50 and SR_0.75


def object_scores(pred: np.ndarray, gt: np.ndarray, gt_visible: np.ndarray) -> dict:
    """Each object's scores over the later frames (t >= 1, the first box is given) where it is
    visible: pred, gt [M, T, 4]; gt_visible [M, T] bool -> name -> [M], NaN for an object never
    visible after the first frame.

    miou: mean IoU over the scored frames; success_{50,75}: the fraction of scored frames whose
    IoU is above 0.5 / 0.75 (strictly, as GOT-10k's success rate).
    """
    scored = gt_visible.copy()
    scored[:, 0] = False
    ious = box_iou(pred, np.nan_to_num(gt))
    count = scored.sum(axis=1)
    seen = count > 0

    def mean_over_scored(values: np.ndarray) -> np.ndarray:
        total = np.where(scored, values, 0.0).sum(axis=1)
        return np.divide(total, count, out=np.full(len(gt), np.nan), where=seen)

    scores = {"miou": mean_over_scored(ious)}
    for overlap in BOX_SUCCESS_OVERLAPS:
        scores[f"success_{round(100 * overlap)}"] = mean_over_scored((ious > overlap) * 1.0)
    return scores


def box_tracking_metrics(pred: np.ndarray, gt: np.ndarray, gt_visible: np.ndarray) -> dict:
    """The means over objects of `object_scores` (objects never visible after frame 0 left
    out): miou, success_50, success_75.

    Raises:
        ValueError: no object is visible after the first frame.
    """
    scores = object_scores(pred, gt, gt_visible)
    if not np.isfinite(scores["miou"]).any():
        raise ValueError("no object is visible after the first frame")
    return {name: float(np.nanmean(values)) for name, values in scores.items()}


def label_ranks(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """How many other classes score at least as high as each clip's label: logits [N, C],
    labels [N] -> [N] int (0: the label alone is the top class). Ties count against the
    label, so a readout that scores every class alike is never right by luck."""
    own = np.take_along_axis(logits, labels[:, None], axis=1)
    return np.sum(logits >= own, axis=1) - 1


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of clips whose label is among the k highest-scoring classes: logits [N, C],
    labels [N]. With C <= k classes every label is, and the value is 1 by definition."""
    return float(np.mean(label_ranks(logits, labels) < k))
