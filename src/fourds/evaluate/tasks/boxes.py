"""Box tracking: one given query per object, its first-frame box; predicts every frame's box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fourds.config.tasks import TASKS
from fourds.evaluate.metrics import box_tracking_metrics, object_scores
from fourds.evaluate.pictures import boxes_figure
from fourds.evaluate.tasks import TaskContext
from fourds.evaluate.tasks.base import (
    ClipGeometry,
    Evaluation,
    Infer,
    batches,
    fixed_outputs,
    raster_location,
)


class BoxTrackingTask:
    """Given an object's box in frame 0, predict its box in every frame; scored with the mean
    IoU over later frames where the object is visible and the success rates at 0.5 and 0.75
    overlap (GOT-10k's SR), per object, then averaged over every object of the test clips.

    Query description: the box centre's (t, y, x) in frame 0, then (x0, y0, x1, y1) / size.
    Outputs per query: T x the change of (x0, y0, x1, y1) / size from the first-frame box (an
    untrained readout starts from "the object stays where it was"). Objects not visible in
    frame 0 have no query to give and are left out of the loss and the metric.
    """

    name = "boxes"
    keys = TASKS[name].keys
    headline = TASKS[name].headline
    head = "attention"
    num_queries = 0
    query_dim = 7

    def __init__(self, geometry: ClipGeometry):
        self.geometry = geometry
        self.out_dim = 4 * geometry.frames

    def targets(self, split: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """{"boxes": [N, M, T, 4] float32 pixels (0 where not visible),
        "box_visible": [N, M, T] bool}."""
        visible = torch.from_numpy(split["box_visible"])
        boxes = torch.from_numpy(np.nan_to_num(split["boxes"].astype(np.float32)))
        return {"boxes": boxes * visible[..., None], "box_visible": visible}

    def with_queries(self, batch, generator=None):
        """Every object's first-frame box as its query."""
        first = batch["boxes"][..., 0, :]  # [B, M, 4]
        centre_x, centre_y = (
            (first[..., 0] + first[..., 2]) / 2,
            (first[..., 1] + first[..., 3]) / 2,
        )
        location = raster_location(
            torch.zeros_like(centre_x), centre_y, centre_x, self.geometry.shape
        )
        queries = torch.cat([location, first / self.geometry.size], dim=-1)
        return {**batch, "queries": queries, "query_valid": batch["box_visible"][..., 0]}

    def predict(self, outputs: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """outputs [B, M, 4T], queries [B, M, 7] -> boxes [B, M, T, 4] in pixels."""
        first = queries[..., None, 3:]  # the first-frame box, normalised
        return (first + outputs.unflatten(-1, (self.geometry.frames, 4))) * self.geometry.size

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """L1 on box corners (in units of the frame size) where the object is visible."""
        seen = (batch["box_visible"] & batch["query_valid"][..., None]).float()
        error = (self.predict(outputs, batch["queries"]) - batch["boxes"]).abs().sum(
            -1
        ) / self.geometry.size
        return (error * seen).sum() / seen.sum().clamp_min(1)

    def evaluate(self, infer: Infer, targets, batch_size: int):
        parts = []
        for index in batches(len(targets["boxes"]), batch_size):
            batch = self.with_queries({key: value[index] for key, value in targets.items()})
            parts.append(self.predict(infer(index, batch["queries"]), batch["queries"]))
        prediction = torch.cat(parts).numpy()
        boxes, visible = targets["boxes"].numpy(), targets["box_visible"].numpy()
        queried = visible[..., 0]
        metrics = box_tracking_metrics(prediction[queried], boxes[queried], visible[queried])
        per_clip = [
            object_scores(p[q], t[q], v[q])
            for p, t, v, q in zip(prediction, boxes, visible, queried, strict=True)
        ]  # per clip: its queried objects' scores
        weight = np.array([np.isfinite(clip["miou"]).sum() for clip in per_clip], float)
        clips = {
            name: np.array(
                [
                    np.nanmean(c[name]) if w else np.nan
                    for c, w in zip(per_clip, weight, strict=True)
                ]
            )
            for name in metrics
        }
        clips["weight"] = weight
        metrics["objects"] = int(queried.sum())
        return Evaluation(metrics, {"boxes": prediction}, clips)

    def baseline(self, train):
        """Every object stays in its first-frame box (zero outputs)."""
        return fixed_outputs(torch.zeros(1, self.out_dim, device="cpu"))

    def draw(self, videos, targets, predictions, out_dir: Path) -> list[Path]:
        path = out_dir / "boxes.png"
        truth = (targets["boxes"].numpy(), targets["box_visible"].numpy())
        return [boxes_figure(videos, truth, predictions["boxes"], path)]


def build(geometry: ClipGeometry, context: TaskContext) -> BoxTrackingTask:
    """The box-tracking task for clips of `geometry`."""
    return BoxTrackingTask(geometry)
