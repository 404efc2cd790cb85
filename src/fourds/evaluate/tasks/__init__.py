"""The readout tasks: depth, camera pose, point tracking, box tracking and classification."""

from __future__ import annotations

from fourds.evaluate.tasks.base import ClipGeometry, Task
from fourds.evaluate.tasks.boxes import BoxTrackingTask
from fourds.evaluate.tasks.classification import ClassificationTask
from fourds.evaluate.tasks.depth import DepthTask
from fourds.evaluate.tasks.pose import PoseTask
from fourds.evaluate.tasks.tracking import TrackingTask
from fourds.world.scene import CAMERA_MOTIONS

TASK_CLASSES = {
    "depth": DepthTask,
    "pose": PoseTask,
    "tracking": TrackingTask,
    "boxes": BoxTrackingTask,
    "classification": ClassificationTask,
}


def make_task(name: str, geometry: ClipGeometry, depth_alignment: str) -> Task:
    """The task `name` (one of fourds.config.READOUT_TASKS) for clips of `geometry`."""
    if name == "depth":
        return DepthTask(geometry, depth_alignment)
    if name == "pose":
        return PoseTask(geometry)
    if name == "tracking":
        return TrackingTask(geometry)
    if name == "boxes":
        return BoxTrackingTask(geometry)
    if name == "classification":
        return ClassificationTask(CAMERA_MOTIONS)
    raise ValueError(f"unknown readout task {name!r}")


__all__ = ["TASK_CLASSES", "ClipGeometry", "Task", "make_task"]
