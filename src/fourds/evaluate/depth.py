"""The depth task: one learned query per output tubelet, each predicting its log-depths."""

from __future__ import annotations

import numpy as np
import torch

from fourds.evaluate.metrics import depth_metrics
from fourds.models.mae import patchify, unpatchify


class DepthTask:
    """Targets, loss and metrics for per-pixel depth.

    The readout predicts log-depth for every pixel of each (t, p, q) output tubelet; queries are
    laid out on the encoder's (T', h, w) token grid.
    """

    key = "depth"
    headline = "abs_rel"

    def __init__(self, tubelet: tuple[int, int, int], grid: tuple[int, int, int]):
        self.tubelet, self.grid = tubelet, grid
        self.num_queries = grid[0] * grid[1] * grid[2]
        self.out_dim = tubelet[0] * tubelet[1] * tubelet[2]

    def targets(self, split: dict[str, np.ndarray]) -> torch.Tensor:
        """Ground-truth depth [N, T, H, W] float32 metres from a curated split."""
        return torch.from_numpy(split["depth"].astype(np.float32))

    def loss(self, outputs: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """L1 on log-depth over valid pixels. outputs [B, Q, out_dim], depth [B, T, H, W]."""
        target = patchify(depth[..., None], self.tubelet)  # [B, Q, out_dim]
        valid = target > 0
        error = (outputs - target.clamp_min(1e-6).log()).abs()
        return (error * valid).sum() / valid.sum().clamp_min(1)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """outputs [B, Q, out_dim] -> depth [B, T, H, W] in metres."""
        return unpatchify(outputs, self.tubelet, self.grid)[..., 0].exp()

    def metrics(self, prediction: np.ndarray, depth: np.ndarray) -> dict[str, float]:
        return depth_metrics(prediction, depth)
