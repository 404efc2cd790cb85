"""Depth: one learned query per output patch, each predicting its pixels' depth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fourds.config.task_options import DepthOptions
from fourds.config.tasks import TASKS
from fourds.evaluate.metrics import (
    DepthProtocol,
    align_depth,
    depth_image_metrics,
    depth_metrics,
    depth_valid,
)
from fourds.evaluate.pictures import depth_figure
from fourds.evaluate.tasks import TaskContext
from fourds.evaluate.tasks.base import (
    ClipGeometry,
    Evaluation,
    Infer,
    batches,
    fixed_outputs,
    per_clip_values,
)
from fourds.models.mae import patchify, unpatchify

DEPTH_OUTPUTS = ("log", "linear")
DEPTH_LOSSES = ("log_l1", "abs_rel")
LOG_L1_WEIGHT = 0.1  # of the L1 on log-depth added to the abs_rel loss
MAX_LOG_DEPTH = 10.0  # |log-depth| outputs are clamped to this in the abs_rel loss


class DepthTask:
    """Per-pixel depth in metres; scored with the standard set (AbsRel, SqRel, RMSE, RMSE log,
    delta < 1.25, 1.25^2, 1.25^3) on the protocol `protocol` names (DepthProtocol: alignment,
    per-image or pooled averaging, valid range with predictions clamped to it).

    Each query predicts the depth of the (t, y, x) pixels of one output patch, queries laid out
    in raster order on the clip's patch grid. fourds readouts predict log-depth per encoder
    tubelet (the defaults); the official 4DS depth readout, once converted, predicts linear
    depth per 2x8x8 patch (`patch` and `output` say so). Before scoring, each test clip's
    prediction is aligned to its truth by `protocol.alignment` (none, median, least_squares).
    """

    name = "depth"
    keys = TASKS[name].keys
    headline = TASKS[name].headline
    head = "attention"
    query_dim = 0

    def __init__(
        self,
        geometry: ClipGeometry,
        protocol: DepthProtocol,
        patch: tuple[int, int, int] | None = None,
        output: str = "log",
        loss: str = "log_l1",
    ):
        if output not in DEPTH_OUTPUTS:
            raise ValueError(f"depth output {output!r} is not one of {list(DEPTH_OUTPUTS)}")
        if loss not in DEPTH_LOSSES or (loss == "abs_rel" and output != "log"):
            raise ValueError(
                f"depth loss {loss!r} with {output} outputs: use one of "
                f"{list(DEPTH_LOSSES)} (abs_rel needs log outputs)"
            )
        self.geometry, self.protocol, self.output = geometry, protocol, output
        self.loss_kind = loss
        self.patch = patch or geometry.tubelet
        sizes = geometry.shape
        if any(size % step for size, step in zip(sizes, self.patch, strict=True)):
            raise ValueError(f"clips {sizes} do not divide into depth patches {self.patch}")
        self.patch_grid = tuple(size // step for size, step in zip(sizes, self.patch, strict=True))
        self.num_queries = int(np.prod(self.patch_grid))
        self.out_dim = int(np.prod(self.patch))

    def targets(self, split: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """{"depth": [N, T, H, W] float32 metres (0: no measurement)}."""
        return {"depth": torch.from_numpy(split["depth"].astype(np.float32))}

    def with_queries(self, batch, generator):
        return batch

    def output_targets(self, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """depth [B, T, H, W] metres -> (the outputs that predict it exactly [B, Q, out_dim]:
        log-depth, or depth for linear outputs; and where it was measured, bool, same shape)."""
        target = patchify(depth[..., None], self.patch)
        valid = target > 0
        if self.output == "log":
            target = target.clamp_min(1e-6).log()
        return target, valid

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Over valid pixels, outputs [B, Q, out_dim]: "log_l1", L1 on log-depth (or depth, for
        linear outputs); "abs_rel", the mean relative error |d - d*| / d* of the predicted
        depth (what the headline scores: an L1 on log-depth predicts the median, which AbsRel
        punishes where depth is uncertain) plus LOG_L1_WEIGHT x the L1 on log-depth."""
        target, valid = self.output_targets(batch["depth"])
        count = valid.sum().clamp_min(1)
        log_l1 = ((outputs - target).abs() * valid).sum() / count
        if self.loss_kind == "log_l1":
            return log_l1
        truth = target.exp()
        depth = outputs.clamp(-MAX_LOG_DEPTH, MAX_LOG_DEPTH).exp()
        relative = ((depth - truth).abs() / truth * valid).sum() / count
        return relative + LOG_L1_WEIGHT * log_l1

    def baseline(self, train):
        """The layout-only predictor: each pixel's (t, y, x) mean over the training clips'
        measured pixels (of log-depth for log outputs), whatever the video; a pixel never
        measured gets the mean of all."""
        target, valid = self.output_targets(train["depth"])  # [N, Q, out_dim]
        target = target * valid
        overall = target.sum() / valid.sum().clamp_min(1)
        seen = valid.sum(0)
        mean = torch.where(seen > 0, target.sum(0) / seen.clamp_min(1), overall)
        return fixed_outputs(mean)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """outputs [B, Q, out_dim] -> depth [B, T, H, W] in metres."""
        depth = unpatchify(outputs, self.patch, self.patch_grid)[..., 0]
        return depth.exp() if self.output == "log" else depth

    def evaluate(self, infer: Infer, targets, batch_size: int):
        """Metrics of the test clips after per-clip alignment, on `protocol.averaging`:
        per_image averages each frame's metrics over every scored frame (per clip: the mean
        over its frames, weighted by its scored frames); pooled pools every valid pixel (per
        clip: its own pixels' metrics, weighted by its valid pixels)."""
        depth = targets["depth"].numpy()
        prediction = np.concatenate(
            [self.predict(infer(index, None)).numpy() for index in batches(len(depth), batch_size)]
        )
        depth_range = self.protocol.depth_range
        aligned = np.stack(
            [
                align_depth(p, t, self.protocol.alignment, depth_range)
                for p, t in zip(prediction, depth, strict=True)
            ]
        )
        predictions = {"depth": aligned.astype(np.float32)}
        if self.protocol.averaging == "pooled":
            scores = [
                depth_metrics(p, t, depth_range) if depth_valid(t, depth_range).any() else None
                for p, t in zip(aligned, depth, strict=True)
            ]
            clips = per_clip_values(scores)
            clips["weight"] = depth_valid(depth, depth_range).reshape(len(depth), -1).sum(1)
            return Evaluation(depth_metrics(aligned, depth, depth_range), predictions, clips)
        images = depth_image_metrics(aligned, depth, depth_range)  # name -> [N, T]
        scored = np.isfinite(images[self.headline])
        if not scored.any():
            raise ValueError(f"no test frame has ground-truth depth inside {depth_range}")
        metrics = {name: float(np.nanmean(values)) for name, values in images.items()}
        clips = {
            name: np.array(
                [
                    np.nanmean(row) if seen.any() else np.nan
                    for row, seen in zip(values, scored, strict=True)
                ]
            )
            for name, values in images.items()
        }
        clips["weight"] = scored.sum(axis=1).astype(float)
        return Evaluation(metrics, predictions, clips)

    def draw(self, videos, targets, predictions, out_dir: Path) -> list[Path]:
        path = out_dir / "depth.png"
        return [depth_figure(videos, targets["depth"].numpy(), predictions["depth"], path)]


def depth_protocol(options: DepthOptions) -> DepthProtocol:
    """How depth is scored under readouts.depth.options."""
    return DepthProtocol(options.alignment, options.averaging, options.range)


def build(geometry: ClipGeometry, context: TaskContext) -> DepthTask:
    """The depth task for clips of `geometry`, scored and trained as its options say."""
    options = context.options
    return DepthTask(geometry, depth_protocol(options), loss=options.loss)
