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
from typing import NamedTuple, Protocol

import numpy as np
import torch

# (clip indices [B], queries [B, Q, query_dim] or None) -> readout outputs [B, Q, out_dim]
Infer = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


class Evaluation(NamedTuple):
    """A readout scored on the N test clips.

    metrics: the task's benchmark metrics over the test set (a group of them under one key, as
        a dict: fourds.evaluate.perception_test.OFFICIAL).
    predictions: per test clip, arrays [N, ...] (for the example pictures).
    clips: per-clip values, arrays [N] float: the headline metric (named as in `metrics`) and
        other per-clip metrics, NaN for a clip that is not scored; and "weight", how many units
        (pixels, objects) the clip's headline value pools, 0 for an unscored clip, so that the
        weighted mean of the clips' headline values is the test-set headline. Metrics averaged
        over clips weigh each scored clip 1. The report bootstraps over clips with these.
    """

    metrics: dict[str, float]
    predictions: dict[str, np.ndarray]
    clips: dict[str, np.ndarray]


class Task(Protocol):
    name: str
    keys: tuple[str, ...]  # ground-truth arrays the task reads from a split
    headline: str  # the metric the report plots
    head: str  # the readout that reads it out, one of fourds.evaluate.readout.HEADS
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
    ) -> Evaluation:
        """The test-set metrics, predictions and per-clip values of the readout behind `infer`."""

    def baseline(self, train: dict[str, torch.Tensor]) -> Infer:
        """The task's no-learning predictor, as outputs that ignore the video: what a readout
        scores without reading the features (`train`: the training split's targets, for
        baselines that take a prior from them)."""

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


def per_clip_values(scores: list[dict[str, float] | None]) -> dict[str, np.ndarray]:
    """Per-clip metric dicts (None for an unscored clip) -> metric -> [N] float (NaN unscored),
    with "weight" 1 for every scored clip and 0 for the others."""
    names = next((list(score) for score in scores if score), [])
    clips = {
        name: np.array([np.nan if score is None else score[name] for score in scores], float)
        for name in names
    }
    clips["weight"] = np.array([0.0 if score is None else 1.0 for score in scores])
    return clips


def fixed_outputs(outputs: torch.Tensor) -> Infer:
    """An Infer that gives every clip the same outputs, whatever its features: `outputs`
    [Q, out_dim] for learned queries, or [1, out_dim] repeated for each given query."""

    def infer(index: torch.Tensor, queries: torch.Tensor | None) -> torch.Tensor:
        count = len(outputs) if queries is None else queries.shape[1]
        return outputs.expand(len(index), count, -1)

    return infer


def batches(count: int, batch_size: int) -> list[torch.Tensor]:
    """Consecutive clip indices [b] covering range(count), on the host."""
    return [
        torch.arange(start, min(start + batch_size, count), device="cpu")
        for start in range(0, count, batch_size)
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
