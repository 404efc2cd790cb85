"""A toy readout task for tests/evaluate/test_adding_a_task.py: a clip's mean brightness in
[0, 1], read by one learned query. It exists only once that test adds its entry to the task
table (fourds.config.tasks.TASKS["brightness"])."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fourds.config.tasks import TASKS
from fourds.evaluate.tasks import TaskContext
from fourds.evaluate.tasks.base import ClipGeometry, Evaluation, Infer, batches, fixed_outputs


class BrightnessTask:
    name = "brightness"
    keys = TASKS[name].keys
    headline = TASKS[name].headline
    num_queries, query_dim, out_dim = 1, 0, 1

    def targets(self, split: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """{"brightness": [N]}: each clip's mean pixel value over 255."""
        video = split["video"].astype(np.float32)
        return {"brightness": torch.from_numpy(video.mean(axis=(1, 2, 3, 4)) / 255.0)}

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
    return BrightnessTask()
