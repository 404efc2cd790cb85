"""Point tracking: one given query per (point, query frame), predicting its track.

Scored with the TAP-Vid metrics at 256x256 in both query modes: "first" (each point queried at
its first visible frame; the headline) and "strided" (queried at every 5th frame where it is
visible), computed per clip and then averaged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fourds.config.tasks import TASKS
from fourds.evaluate.metrics import tapvid_metrics
from fourds.evaluate.pictures import tracks_figure
from fourds.evaluate.tasks import TaskContext
from fourds.evaluate.tasks.base import (
    ClipGeometry,
    Evaluation,
    Infer,
    fixed_outputs,
    per_clip_values,
    raster_location,
)

TAPVID_SIZE = 256
QUERY_STRIDE = 5  # frames between strided queries, as in TAP-Vid
POSITION_SCALE = 4.0  # pixels: the Huber loss is quadratic below this error
TRAINING_QUERIES = ("random", "first")


class TrackingTask:
    """Given a point (t, y, x) on a surface, predict its (x, y) and visibility in every frame.

    Query description: (t, y, x) normalised (see fourds.models.readout). Outputs per query:
    T x (dx / W, dy / H, visibility logit), the offsets from the query point, so an untrained
    readout starts from "the point stays where it was queried". `queries`: the frames training
    queries are taken at (`with_queries`); `static`: predicted displacements below this
    fraction of the frame size are put back to zero (`predict`); `head` names the readout
    (fourds.evaluate.readout.HEADS): "attention" or "motion".
    """

    name = "tracking"
    keys = TASKS[name].keys
    headline = TASKS[name].headline
    num_queries = 0
    query_dim = 3

    def __init__(
        self,
        geometry: ClipGeometry,
        queries: str = "random",
        static: float = 0.0,
        head: str = "attention",
    ):
        if queries not in TRAINING_QUERIES:
            raise ValueError(f"tracking queries {queries!r} are not one of {TRAINING_QUERIES}")
        self.geometry, self.queries, self.static = geometry, queries, static
        self.head = head
        self.out_dim = 3 * geometry.frames

    def targets(self, split: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """{"tracks": [N, P, T, 2] float32 (x, y) pixels, "visible": [N, P, T] bool}."""
        return {
            "tracks": torch.from_numpy(split["tracks"].astype(np.float32)),
            "visible": torch.from_numpy(split["visible"]),
        }

    def queries_at(self, tracks: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        """Query descriptions of tracks [..., T, 2] at frames [...] -> [..., 3]."""
        point = tracks.gather(-2, frame[..., None, None].expand(*frame.shape, 1, 2))[..., 0, :]
        return raster_location(frame, point[..., 1], point[..., 0], self.geometry.shape)

    def with_queries(self, batch, generator):
        """Query every point at its first visible frame ("first") or at one of its visible
        frames drawn at random ("random"); a point never visible at any frame (left out of the
        loss)."""
        visible = batch["visible"]
        if self.queries == "first":
            frame = visible.float().argmax(dim=-1)
        else:
            scores = torch.rand(visible.shape, generator=generator) + visible.float()
            frame = scores.argmax(dim=-1)  # a random visible frame (any frame if never visible)
        queries = self.queries_at(batch["tracks"], frame)
        return {**batch, "queries": queries, "query_valid": visible.any(dim=-1)}

    def split_outputs(
        self, outputs: torch.Tensor, queries: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """outputs [B, Q, 3T], queries [B, Q, 3] -> (positions [B, Q, T, 2] (x, y) pixels,
        visibility logits [B, Q, T])."""
        outputs = outputs.unflatten(-1, (self.geometry.frames, 3))
        start = queries[..., None, [2, 1]]  # (x, y) of the query point, normalised
        return (start + outputs[..., :2]) * self.geometry.size, outputs[..., 2]

    def predict(
        self, outputs: torch.Tensor, queries: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`split_outputs`, with every predicted position that lies within `static` (a
        fraction of the frame size) of its query point put back on it: a readout's small
        outputs are noise more often than motion, and a point that stays is scored at 1 px."""
        positions, logits = self.split_outputs(outputs, queries)
        if self.static > 0:
            start = queries[..., None, [2, 1]] * self.geometry.size
            still = (positions - start).norm(
                dim=-1, keepdim=True
            ) < self.static * self.geometry.size
            positions = torch.where(still, start.expand_as(positions), positions)
        return positions, logits

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Huber on positions where visible, plus binary cross-entropy on visibility."""
        positions, logits = self.split_outputs(outputs, batch["queries"])
        valid = batch["query_valid"][..., None].expand_as(logits).float()
        seen = valid * batch["visible"].float()
        huber = F.huber_loss(positions, batch["tracks"], delta=POSITION_SCALE, reduction="none")
        position_loss = (huber.sum(-1) * seen).sum() / seen.sum().clamp_min(1) / POSITION_SCALE
        occlusion = F.binary_cross_entropy_with_logits(
            logits, batch["visible"].float(), reduction="none"
        )
        return position_loss + (occlusion * valid).sum() / valid.sum().clamp_min(1)

    def query_frames(self, visible: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
        """(point index, query frame) pairs of one clip's visible [P, T] in a query mode."""
        if mode == "first":
            points = np.flatnonzero(visible.any(axis=1))
            return points, visible[points].argmax(axis=1)
        points, frames = np.nonzero(visible[:, ::QUERY_STRIDE])
        return points, frames * QUERY_STRIDE

    def evaluate(self, infer: Infer, targets, batch_size: int):
        """TAP-Vid metrics per clip in both query modes, averaged over clips; the per-clip
        values are the "first" mode's (the headline's)."""
        tracks, visible = targets["tracks"], targets["visible"]
        scale = TAPVID_SIZE / self.geometry.size
        per_mode = {"first": [], "strided": []}
        first_scores: list[dict[str, float] | None] = [None] * len(tracks)
        predicted_tracks = np.full(tracks.shape, np.nan, dtype=np.float32)
        predicted_visible = np.zeros(visible.shape, dtype=bool)
        for clip in range(len(tracks)):
            for mode, scores in per_mode.items():
                points, frames = self.query_frames(visible[clip].numpy(), mode)
                if len(points) == 0:
                    continue
                points, frames = torch.from_numpy(points), torch.from_numpy(frames)
                queries = self.queries_at(tracks[clip, points], frames)
                outputs = infer(torch.tensor([clip], device="cpu"), queries[None])
                positions, logits = self.predict(outputs, queries[None])
                positions, occluded = positions[0].numpy(), (logits[0] < 0).numpy()
                if mode == "first":
                    predicted_tracks[clip, points] = positions
                    predicted_visible[clip, points] = ~occluded
                gt_visible = visible[clip, points].numpy()
                time, query_time = np.arange(gt_visible.shape[1]), frames.numpy()[:, None]
                scored = time > query_time if mode == "first" else time != query_time
                if not (gt_visible & scored).any():
                    continue  # nothing visible to score in this clip
                query_points = np.stack(
                    [frames.numpy(), *(tracks[clip, points, frames].numpy()[:, ::-1].T * scale)],
                    axis=1,
                )
                score = tapvid_metrics(
                    query_points,
                    ~gt_visible,
                    tracks[clip, points].numpy() * scale,
                    occluded,
                    positions * scale,
                    mode,
                )
                scores.append(score)
                if mode == "first":
                    first_scores[clip] = score
        metrics = {}
        for mode, scores in per_mode.items():
            prefix = "" if mode == "first" else "strided_"
            for key in scores[0]:
                metrics[prefix + key] = float(np.mean([score[key] for score in scores]))
        metrics["scored_clips"] = len(per_mode["first"])
        predictions = {"tracks": predicted_tracks, "visible": predicted_visible}
        return Evaluation(metrics, predictions, per_clip_values(first_scores))

    def baseline(self, train):
        """Static points: every point stays where it was queried, visible in every frame
        (zero outputs)."""
        return fixed_outputs(torch.zeros(1, self.out_dim, device="cpu"))

    def draw(self, videos, targets, predictions, out_dir: Path) -> list[Path]:
        path = out_dir / "tracking.png"
        truth = (targets["tracks"].numpy(), targets["visible"].numpy())
        return [tracks_figure(videos, truth, (predictions["tracks"], predictions["visible"]), path)]


def build(geometry: ClipGeometry, context: TaskContext) -> TrackingTask:
    """The point-tracking task for clips of `geometry`, its queries and head as its options
    say."""
    options = context.options
    return TrackingTask(geometry, options.queries, options.static, options.head)
