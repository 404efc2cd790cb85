"""What every readout task provides, and the conventions they share.

A task turns a curated split into target tensors, optionally samples given queries for a
training batch, scores a batch of readout outputs with a loss, and evaluates a trained readout
on the test split with its benchmark's metrics. Tensors in a `batch` dict have the clip index as
their first dimension; `batch["queries"]` ([B, Q, query_dim], see fourds.models.readout) is
present only for tasks with given queries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

# (clip indices [B], queries [B, Q, query_dim] or None) -> readout outputs [B, Q, out_dim]
Infer = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


class Task(Protocol):
    name: str
    keys: tuple[str, ...]  # ground-truth arrays the task reads from a split
    headline: str  # the metric the report plots
    num_queries: int  # learned queries (unused when query_dim > 0)
    query_dim: int  # numbers per given query (0: learned queries)
    out_dim: int

    def targets(self, split: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Target tensors of every clip of a split, each [N, ...]."""

    def with_queries(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """The training batch with its sampled "queries" (unchanged for learned queries)."""

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scalar training loss of outputs [B, Q, out_dim]."""

    def evaluate(
        self, infer: Infer, targets: dict[str, torch.Tensor], batch_size: int
    ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """(metrics, predictions per test clip) of the readout behind `infer`."""

    def draw(
        self,
        videos: np.ndarray,
        targets: dict[str, torch.Tensor],
        predictions: dict[str, np.ndarray],
        out_dir: Path,
    ) -> list[Path]:
        """PNG examples of a few test clips; returns their paths.

        videos: uint8 [n, T, H, W, 3]; targets and predictions: those clips' rows.
        """


def batches(count: int, batch_size: int) -> list[torch.Tensor]:
    """Consecutive clip indices [b] covering range(count)."""
    return [
        torch.arange(start, min(start + batch_size, count)) for start in range(0, count, batch_size)
    ]


def select(targets: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    """The rows `index` of every target tensor."""
    return {key: value[index] for key, value in targets.items()}


def raster_location(
    frame: torch.Tensor, row: torch.Tensor, column: torch.Tensor, shape
) -> torch.Tensor:
    """(frame index, y pixels, x pixels) -> [..., 3] (t, y, x) normalised as the readout expects.

    shape: (T, H, W) of the clip. t is the frame centre (frame + 0.5) / T.
    """
    frames, height, width = shape
    return torch.stack([(frame.float() + 0.5) / frames, row / height, column / width], dim=-1)


@dataclasses.dataclass(frozen=True)
class ClipGeometry:
    """How clips are tokenised: tubelet (t, p, q), token grid (T', h, w), frames T, size H = W."""

    tubelet: tuple[int, int, int]
    grid: tuple[int, int, int]
    frames: int
    size: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.frames, self.size, self.size
