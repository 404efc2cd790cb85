"""The readout tasks, in one table: depth, camera pose, point tracking, box tracking and
classification.

`TASKS[name]` says everything the rest of fourds needs to know of a task: the class that
implements it (its `keys` are the ground-truth arrays it reads), the readout data formats
(`readouts.<task>.source.format`, fourds.data.benchmarks) that carry that ground truth, and how
to build it for an encoder's clips. The classification task takes its classes from a
benchmark's label list (fourds.data.labelled), or else from the labels of the readout's clips.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np

from fourds.config import ConfigError, ReadoutConfig, TaskReadoutConfig
from fourds.evaluate.metrics import DepthProtocol
from fourds.evaluate.tasks.base import ClipGeometry, Task
from fourds.evaluate.tasks.boxes import BoxTrackingTask
from fourds.evaluate.tasks.classification import ClassificationTask
from fourds.evaluate.tasks.depth import DepthTask
from fourds.evaluate.tasks.pose import PoseTask
from fourds.evaluate.tasks.tracking import TrackingTask


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


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One row of the task table."""

    cls: type
    formats: tuple[str, ...]  # readout source formats that carry the task's ground truth
    build: Callable[[ClipGeometry, TaskContext], Task]
    loads_converted: bool = False  # an official readout converted by `fourds convert` exists

    @property
    def keys(self) -> tuple[str, ...]:
        """The ground-truth arrays the task reads from a split."""
        return self.cls.keys


TASKS: dict[str, TaskSpec] = {
    "depth": TaskSpec(
        DepthTask,
        ("synthetic", "scannet"),
        lambda geometry, c: DepthTask(geometry, c.depth, loss=c.depth_loss),
        loads_converted=True,
    ),
    "pose": TaskSpec(
        PoseTask,
        ("synthetic", "scannet", "realestate10k"),
        lambda geometry, c: PoseTask(geometry, c.pose_pairs),
    ),
    "tracking": TaskSpec(
        TrackingTask,
        ("synthetic", "tapvid", "perception_test"),
        lambda geometry, c: TrackingTask(geometry, c.tracking_queries, c.tracking_static),
    ),
    "boxes": TaskSpec(
        BoxTrackingTask,
        ("synthetic", "box_tracks", "waymo_open"),
        lambda geometry, c: BoxTrackingTask(geometry),
    ),
    "classification": TaskSpec(
        ClassificationTask,
        ("synthetic", "ssv2", "kinetics"),
        lambda geometry, c: (
            ClassificationTask(c.classes)
            if c.classes
            else ClassificationTask.from_labels(
                np.concatenate([split["label"] for split in c.splits])
            )
        ),
    ),
}
SOURCE_FORMATS = tuple(dict.fromkeys(f for spec in TASKS.values() for f in spec.formats))


def make_task(name: str, geometry: ClipGeometry, context: TaskContext) -> Task:
    """The task `name` for clips of `geometry`."""
    return TASKS[name].build(geometry, context)


def check_readout_params(readout: ReadoutConfig, readouts: Mapping[str, TaskReadoutConfig]) -> None:
    """The task rules of params.yaml's `readout` and `readouts` (the schema checks the rest):
    known tasks, a source format that carries each task's ground truth, and a converted readout
    only where one can be loaded.

    Raises:
        ConfigError: naming the key and the rule.
    """
    for task in readout.tasks:
        if task not in TASKS:
            raise ConfigError(f"readout.tasks has {task!r}, which is not one of {list(TASKS)}")
    for task, settings in readouts.items():
        source = settings.source.format
        if source not in SOURCE_FORMATS:
            raise ConfigError(
                f"readouts.{task}.source.format={source!r} is not one of {list(SOURCE_FORMATS)}"
            )
        if task in TASKS and source not in TASKS[task].formats:
            served = [name for name, spec in TASKS.items() if source in spec.formats]
            raise ConfigError(
                f"readouts.{task}.source.format={source!r} has no {task} ground truth "
                f"(it serves {served})"
            )
        if settings.pretrained and not (task in TASKS and TASKS[task].loads_converted):
            loadable = [name for name, spec in TASKS.items() if spec.loads_converted]
            raise ConfigError(
                f"readouts.{task}.pretrained={settings.pretrained!r}: only the {loadable} "
                "readouts can be loaded from `fourds convert` output"
            )


__all__ = [
    "SOURCE_FORMATS",
    "TASKS",
    "ClipGeometry",
    "Task",
    "TaskContext",
    "TaskSpec",
    "check_readout_params",
    "depth_protocol",
    "make_task",
]
