"""The readout tasks, one entry each: what every part of fourds says about a task.

`TASKS[name]` holds a task's facts: the headline metric its metrics.json, the report, the
terminal answer and the README lead with, how tables and plots name it and which way is better,
its no-learning baseline in a few words, the ground-truth arrays it reads from a split, the
section of its own options (`readouts.<task>.options`, fourds.config.task_options) and the
module that implements it (its `build(geometry, context)` makes the task,
fourds.evaluate.tasks.make_task). The readout stage, the report, `fourds answer` and the
README's tables read this table; adding a task is an entry here and its module. The source
formats that carry a task's ground truth are the format table's (fourds.config.formats).

No torch here: params validation and the report import it.
"""

from __future__ import annotations

import dataclasses

from fourds.config.task_options import DepthOptions, PoseOptions, TaskOptions, TrackingOptions
from fourds.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class TaskEntry:
    """One task of the table (module docstring)."""

    headline: str  # the metric the report plots and the README shows
    label: str  # the headline as tables and plots name it
    higher_is_better: bool
    baseline: str  # the no-learning predictor (Task.baseline), in a few words
    keys: tuple[str, ...]  # ground-truth arrays the task reads from a split
    module: str  # implements the task: `build(geometry, context) -> Task`
    loads_converted: bool = False  # an official readout converted by `fourds convert` exists
    needs: str = ""  # what the data must be, where not every corpus carries the task's keys
    options: type[TaskOptions] = TaskOptions  # the section of readouts.<task>.options

    @property
    def better(self) -> str:
        """ "higher" or "lower": which way the headline is better."""
        return "higher" if self.higher_is_better else "lower"

    @property
    def title(self) -> str:
        """The headline's label and direction, e.g. "depth AbsRel (lower is better)"."""
        return f"{self.label} ({self.better} is better)"


TASKS: dict[str, TaskEntry] = {
    "depth": TaskEntry(
        "abs_rel",
        "depth AbsRel",
        False,
        "layout-only mean depth",
        ("depth",),
        "fourds.evaluate.tasks.depth",
        loads_converted=True,
        options=DepthOptions,
    ),
    "pose": TaskEntry(
        "end_point_error",
        "pose end-point error",
        False,
        "zero camera motion",
        ("extrinsics",),
        "fourds.evaluate.tasks.pose",
        options=PoseOptions,
    ),
    "tracking": TaskEntry(
        "average_jaccard",
        "tracking average Jaccard",
        True,
        "static points",
        ("tracks", "visible"),
        "fourds.evaluate.tasks.tracking",
        options=TrackingOptions,
    ),
    "boxes": TaskEntry(
        "miou",
        "boxes mean IoU",
        True,
        "first-frame box",
        ("boxes", "box_visible"),
        "fourds.evaluate.tasks.boxes",
    ),
    "classification": TaskEntry(
        "top1",
        "classification top-1",
        True,
        "most frequent class",
        ("label",),
        "fourds.evaluate.tasks.classification",
    ),
    "appearance": TaskEntry(
        "top1",
        "appearance top-1",
        True,
        "most frequent kind",
        ("instances", "body_kind"),
        "fourds.evaluate.tasks.appearance",
        needs="a catalog world's corpus (`fourds synth --complexity catalog-1k`)",
    ),
}


def options_section(task: str) -> type[TaskOptions]:
    """The section `readouts.<task>.options` is parsed into: the task's own (an empty one for a
    task without options).

    Raises:
        ConfigError: `task` is not in the table.
    """
    if task not in TASKS:
        raise ConfigError(f"readouts has {task!r}, which is not one of {list(TASKS)}")
    return TASKS[task].options
