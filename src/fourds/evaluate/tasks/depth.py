"""Depth: one learned query per output tubelet, each predicting its pixels' log-depth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fourds.evaluate.metrics import align_depth, depth_metrics
from fourds.evaluate.pictures import depth_figure
from fourds.evaluate.tasks.base import ClipGeometry, Infer, batches
from fourds.models.mae import patchify, unpatchify


class DepthTask:
    """Per-pixel depth in metres; scored with AbsRel, delta < 1.25 and RMSE.

    The readout predicts log-depth for every pixel of each (t, p, q) output tubelet; queries are
    laid out on the encoder's (T', h, w) token grid. Before scoring, each test clip's prediction
    is aligned to its truth by `alignment` (none, median, least_squares).
    """

    name = "depth"
    keys = ("depth",)
    headline = "abs_rel"
    query_dim = 0

    def __init__(self, geometry: ClipGeometry, alignment: str):
        self.geometry, self.alignment = geometry, alignment
        self.num_queries = int(np.prod(geometry.grid))
        self.out_dim = int(np.prod(geometry.tubelet))

    def targets(self, split: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """{"depth": [N, T, H, W] float32 metres (0: no measurement)}."""
        return {"depth": torch.from_numpy(split["depth"].astype(np.float32))}

    def with_queries(self, batch, generator):
        return batch

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """L1 on log-depth over valid pixels. outputs [B, Q, out_dim]."""
        target = patchify(batch["depth"][..., None], self.geometry.tubelet)  # [B, Q, out_dim]
        valid = target > 0
        error = (outputs - target.clamp_min(1e-6).log()).abs()
        return (error * valid).sum() / valid.sum().clamp_min(1)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """outputs [B, Q, out_dim] -> depth [B, T, H, W] in metres."""
        return unpatchify(outputs, self.geometry.tubelet, self.geometry.grid)[..., 0].exp()

    def evaluate(self, infer: Infer, targets, batch_size: int):
        """Metrics pooled over every valid pixel of the test clips, after per-clip alignment."""
        depth = targets["depth"].numpy()
        prediction = np.concatenate(
            [self.predict(infer(index, None)).numpy() for index in batches(len(depth), batch_size)]
        )
        aligned = np.stack(
            [align_depth(p, t, self.alignment) for p, t in zip(prediction, depth, strict=True)]
        )
        return depth_metrics(aligned, depth), {"depth": aligned.astype(np.float32)}

    def draw(self, videos, targets, predictions, out_dir: Path) -> list[Path]:
        path = out_dir / "depth.png"
        return [depth_figure(videos, targets["depth"].numpy(), predictions["depth"], path)]
