"""A toy benchmark format's reader, for tests/data/test_adding_a_format.py: a split is one .npz
file of videos with depth ("video" uint8 [V, T, H, W, 3], "depth" float32 [V, T, H, W]),
read with numpy's loader (no pickles); and a toy challenge's scoring of its test split."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fourds.data.sample import Sample
from fourds.evaluate.tasks import Task

CHALLENGE = "toy_challenge"


def write_split(path: Path, videos: int, frames: int, size: int, seed: int) -> Path:
    """A split of `videos` random videos and depth maps, in the toy format."""
    generator = np.random.default_rng(seed)
    video = generator.integers(0, 256, (videos, frames, size, size, 3), dtype=np.uint8)
    depth = generator.uniform(1.0, 5.0, (videos, frames, size, size)).astype(np.float32)
    np.savez(path, video=video, depth=depth)
    return path


def samples(path: Path, size: int, videos: str = "") -> Iterator[Sample]:
    """Each video of the split file with its depth (at its own size: the caller resizes)."""
    with np.load(path, allow_pickle=False) as arrays:
        video, depth = arrays["video"], arrays["depth"]
    for index in range(len(video)):
        yield Sample(name=f"{path.name}:{index}", video=video[index], depth=depth[index])


def files(path: Path, videos: str = "") -> list[Path]:
    """The split file."""
    return [path]


def challenge_task(task: Task, source: object) -> Task:
    """`task`, its evaluation carrying also the toy challenge's number under CHALLENGE: the
    count of test clips it scored."""
    evaluate = task.evaluate

    def scored(infer, targets, batch_size):  # noqa: ANN001, ANN202 (Task.evaluate's)
        evaluation = evaluate(infer, targets, batch_size)
        clips = float(len(next(iter(targets.values()))))
        return evaluation._replace(metrics={**evaluation.metrics, CHALLENGE: clips})

    task.evaluate = scored
    return task
