"""The readout tasks: depth, camera pose, point tracking, box tracking and classification.

What fourds says of each task is one entry of fourds.config.tasks.TASKS; its module here
implements it (`build(geometry, context)` makes the task for an encoder's clips, from the readout
params' `TaskContext`). The classification task takes its classes from a benchmark's label list
(fourds.data.labelled), or else from the labels of the readout's clips.
"""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np

from fourds.config import ReadoutConfig
from fourds.config.tasks import TASKS
from fourds.evaluate.metrics import DepthProtocol
from fourds.evaluate.tasks.base import ClipGeometry, Task


@dataclasses.dataclass(frozen=True)
class TaskContext:
    """What building a task may read besides the clip geometry.

    depth: how depth is scored (readout.depth_alignment, depth_averaging, depth_range).
    pose_pairs: the frame pairs poses are scored over (readout.pose_pairs).
    depth_loss, tracking_queries, tracking_static: how depth and tracking readouts train and
        predict (readout.depth_loss, tracking_queries, tracking_static).
    splits: the readout's splits (train and test), as arrays; the classification task reads
        their labels when `classes` is empty.
    classes: a benchmark's class names, in the order of the classification readout's outputs
        (fourds.data.benchmarks.readout_classes); empty: the labels found in `splits`.
    """

    depth: DepthProtocol
    pose_pairs: str
    splits: tuple[dict[str, np.ndarray], ...]
    depth_loss: str = "log_l1"
    tracking_queries: str = "random"
    tracking_static: float = 0.0
    classes: tuple[str, ...] = ()

    @classmethod
    def from_config(
        cls,
        cfg: ReadoutConfig,
        splits: tuple[dict[str, np.ndarray], ...],
        classes: tuple[str, ...] = (),
    ) -> TaskContext:
        """The context the readout params give, for `splits` (of a source with `classes`)."""
        return cls(
            depth_protocol(cfg),
            cfg.pose_pairs,
            splits,
            cfg.depth_loss,
            cfg.tracking_queries,
            cfg.tracking_static,
            classes,
        )


def depth_protocol(cfg: ReadoutConfig) -> DepthProtocol:
    """The depth scoring protocol of the readout params."""
    return DepthProtocol(cfg.depth_alignment, cfg.depth_averaging, cfg.depth_range)


def make_task(name: str, geometry: ClipGeometry, context: TaskContext) -> Task:
    """The task `name` for clips of `geometry`: its module's `build` (fourds.config.tasks.TASKS)."""
    return importlib.import_module(TASKS[name].module).build(geometry, context)


__all__ = ["ClipGeometry", "Task", "TaskContext", "depth_protocol", "make_task"]
