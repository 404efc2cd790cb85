"""A readout stage's per-clip files: clips.csv (each test clip's values, per seed) and
examples/<task>.png (the first test clips' targets against the predictions)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from fourds.atomic import atomic_path
from fourds.evaluate.tasks import Task
from fourds.evaluate.tasks.base import Evaluation, select

EXAMPLE_CLIPS = 3


def write_clip_values(
    path: Path, seeds: list[dict[str, np.ndarray]], baseline: dict[str, np.ndarray], headline: str
) -> None:
    """clips.csv: a row per test clip (per seed and test clip, after a "seed" column, when the
    readout trained with several seeds): clip, weight, the headline, the baseline's headline,
    then the other values (each [N])."""
    names = ["weight", headline, f"baseline_{headline}"]
    names += sorted(set(seeds[0]) - set(names))
    with atomic_path(path) as partial, open(partial, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(["seed"] if len(seeds) > 1 else []), "clip", *names])
        for seed, clips in enumerate(seeds):
            clips = {**clips, f"baseline_{headline}": baseline[headline]}
            for clip in range(len(clips["weight"])):
                row = [clip, *(repr(float(clips[name][clip])) for name in names)]
                writer.writerow([seed, *row] if len(seeds) > 1 else row)


def draw_examples(
    task: Task, test: dict[str, np.ndarray], targets: dict, evaluation: Evaluation, folder: Path
) -> None:
    """<folder>/<task>.png: the first EXAMPLE_CLIPS test clips, targets against the
    predictions of `evaluation` (the first seed's)."""
    shown = torch.arange(min(EXAMPLE_CLIPS, len(test["video"])), device="cpu")
    predictions = {key: value[: len(shown)] for key, value in evaluation.predictions.items()}
    task.draw(test["video"][shown.numpy()], select(targets, shown), predictions, folder)
