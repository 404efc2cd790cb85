"""A toy readout task for tests/evaluate/test_adding_a_task.py: a clip's mean brightness in
[0, 1] times a gain, an option of its own, read by a head of its own (a linear map of the
clip's mean feature). It exists only once that test adds its entry to the task table
(fourds.config.tasks.TASKS["brightness"]) and its head to the readout's (fourds.evaluate.readout.
HEADS["mean_pool"])."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import StrictFloat
from pydantic.dataclasses import dataclass

from fourds.config.schema import SECTION, TaskOptions
from fourds.evaluate.tasks import TaskContext
from fourds.evaluate.tasks.base import ClipGeometry, Evaluation, Infer, batches, fixed_outputs


@dataclass(frozen=True, config=SECTION)
class BrightnessOptions(TaskOptions):
    """gain: the target is a clip's mean brightness times this."""

    gain: StrictFloat


class MeanPoolHead(torch.nn.Module):
    """The toy task's own head: features [B, L, D] -> [B, 1, out_dim], a linear map of their
    mean over tokens, from zero, plus the outputs it starts from."""

    def __init__(self, feature_dim: int, out_dim: int):
        super().__init__()
        self.linear = torch.nn.Linear(feature_dim, out_dim)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)
        self.register_buffer("start", torch.zeros(1, 1, out_dim, device="cpu"))

    def forward(self, features: torch.Tensor, queries: torch.Tensor | None = None) -> torch.Tensor:
        return self.linear(features.float().mean(1, keepdim=True)) + self.start

    def start_from(self, outputs: torch.Tensor) -> None:
        self.start = outputs.detach().to(self.start).reshape(1, 1, -1)


def mean_pool_head(encoder, task, spec) -> MeanPoolHead:
    return MeanPoolHead(encoder.cfg.width, task.out_dim)


class BrightnessTask:
    name = "brightness"
    keys = ()  # as its entry says (a real task reads them from TASKS; this module is imported
    headline = "abs_error"  # before the test adds the entry)
    head = "mean_pool"
    num_queries, query_dim, out_dim = 1, 0, 1

    def __init__(self, gain: float):
        self.gain = gain

    def targets(self, split: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """{"brightness": [N]}: each clip's mean pixel value over 255, times the gain."""
        video = split["video"].astype(np.float32)
        brightness = video.mean(axis=(1, 2, 3, 4)) / 255.0 * self.gain
        return {"brightness": torch.from_numpy(brightness)}

    def with_queries(self, batch, generator):
        return batch

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.mse_loss(outputs[:, 0, 0], batch["brightness"])

    def evaluate(self, infer: Infer, targets, batch_size: int) -> Evaluation:
        truth = targets["brightness"].numpy()
        predicted = np.concatenate(
            [infer(index, None)[:, 0, 0].numpy() for index in batches(len(truth), batch_size)]
        )
        error = np.abs(predicted - truth).astype(float)
        clips = {"abs_error": error, "weight": np.ones(len(truth))}
        return Evaluation({"abs_error": float(error.mean())}, {"brightness": predicted}, clips)

    def baseline(self, train):
        """Every clip gets the training clips' mean brightness."""
        return fixed_outputs(train["brightness"].mean().reshape(1, 1))

    def draw(self, videos, targets, predictions, out_dir: Path) -> list[Path]:
        return []


def build(geometry: ClipGeometry, context: TaskContext) -> BrightnessTask:
    return BrightnessTask(context.options.gain)
