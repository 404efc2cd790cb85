"""The readout tasks: depth, camera pose, point tracking, box tracking and classification.

What fourds says of each task is one entry of fourds.config.tasks.TASKS; its module here
implements it (`build(geometry, context)` makes the task for an encoder's clips, from its own
options and the readout's splits, a `TaskContext`). The classification task takes its classes
from a benchmark's label list (fourds.data.labelled), or else from the labels of the readout's
clips.
"""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np

from fourds.config.schema import TaskOptions
from fourds.config.tasks import TASKS
from fourds.evaluate.tasks.base import ClipGeometry, Task


@dataclasses.dataclass(frozen=True)
class TaskContext:
    """What building a task may read besides the clip geometry.

    options: the task's own options (readouts.<task>.options: fourds.config.task_options's
        section for the task, an empty TaskOptions for a task without any).
    splits: the readout's splits (train and test), as arrays; the classification task reads
        their labels when `classes` is empty.
    classes: a benchmark's class names, in the order of the classification readout's outputs
        (fourds.data.benchmarks.readout_classes); empty: the labels found in `splits`.
    """

    options: TaskOptions
    splits: tuple[dict[str, np.ndarray], ...] = ()
    classes: tuple[str, ...] = ()


def make_task(name: str, geometry: ClipGeometry, context: TaskContext) -> Task:
    """The task `name` for clips of `geometry`: its module's `build` (fourds.config.tasks.TASKS)."""
    return importlib.import_module(TASKS[name].module).build(geometry, context)


__all__ = ["ClipGeometry", "Task", "TaskContext", "make_task"]
