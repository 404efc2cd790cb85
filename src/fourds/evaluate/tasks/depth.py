"""Depth: one learned query per output patch, each predicting its pixels' depth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fourds.evaluate.metrics import align_depth, depth_metrics
from fourds.evaluate.pictures import depth_figure
from fourds.evaluate.tasks.base import ClipGeometry, Evaluation, Infer, batches, per_clip_values
from fourds.models.mae import patchify, unpatchify

DEPTH_OUTPUTS = ("log", "linear")


class DepthTask:
    """Per-pixel depth in metres; scored with AbsRel, delta < 1.25 and RMSE.

    Each query predicts the depth of the (t, y, x) pixels of one output patch, queries laid out
    in raster order on the clip's patch grid. fourds readouts predict log-depth per encoder
    tubelet (the defaults); the official 4DS depth readout, once converted, predicts linear
    depth per 2x8x8 patch (`patch` and `output` say so). Before scoring, each test clip's
    prediction is aligned to its truth by `alignment` (none, median, least_squares).
    """

    name = "depth"
    keys = ("depth",)
    headline = "abs_rel"
    query_dim = 0

    def __init__(
        self,
        geometry: ClipGeometry,
        alignment: str,
        patch: tuple[int, int, int] | None = None,
        output: str = "log",
    ):
        if output not in DEPTH_OUTPUTS:
            raise ValueError(f"depth output {output!r} is not one of {list(DEPTH_OUTPUTS)}")
        self.geometry, self.alignment, self.output = geometry, alignment, output
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

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """L1 on log-depth (or depth, for linear outputs) over valid pixels.
        outputs [B, Q, out_dim]."""
        target = patchify(batch["depth"][..., None], self.patch)  # [B, Q, out_dim]
        valid = target > 0
        if self.output == "log":
            target = target.clamp_min(1e-6).log()
        return ((outputs - target).abs() * valid).sum() / valid.sum().clamp_min(1)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """outputs [B, Q, out_dim] -> depth [B, T, H, W] in metres."""
        depth = unpatchify(outputs, self.patch, self.patch_grid)[..., 0]
        return depth.exp() if self.output == "log" else depth

    def evaluate(self, infer: Infer, targets, batch_size: int):
        """Metrics pooled over every valid pixel of the test clips, after per-clip alignment;
        per clip, its own pixels' metrics, weighted by its valid pixels."""
        depth = targets["depth"].numpy()
        prediction = np.concatenate(
            [self.predict(infer(index, None)).numpy() for index in batches(len(depth), batch_size)]
        )
        aligned = np.stack(
            [align_depth(p, t, self.alignment) for p, t in zip(prediction, depth, strict=True)]
        )
        clips = per_clip_values([depth_metrics(p, t) for p, t in zip(aligned, depth, strict=True)])
        clips["weight"] = ((depth > 0) & np.isfinite(depth)).reshape(len(depth), -1).sum(1)
        predictions = {"depth": aligned.astype(np.float32)}
        return Evaluation(depth_metrics(aligned, depth), predictions, clips)

    def draw(self, videos, targets, predictions, out_dir: Path) -> list[Path]:
        path = out_dir / "depth.png"
        return [depth_figure(videos, targets["depth"].numpy(), predictions["depth"], path)]
