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
