"""Appearance: one learned query naming the kind of the clip's most visible body.

In a catalog world (fourds.world.catalog) every body is one of the catalog's kinds, and kinds
recur with Zipf frequencies. This task names the kind of the body that covers the most pixels
over the clip among the catalog's APPEARANCE_KINDS commonest kinds, or "other" (a rarer kind,
or no body in view): the appearance task, as Kinetics' classes are mostly what is seen, beside
the classification task's camera motion, which, as SSv2's classes, is how things move. Scored
with top-1 and top-5 accuracy against the most frequent training class, as classification.
"""

from __future__ import annotations

import numpy as np
import torch

from fourds.config.tasks import TASKS
from fourds.evaluate.tasks import TaskContext
from fourds.evaluate.tasks.base import ClipGeometry
from fourds.evaluate.tasks.classification import ClassificationTask

APPEARANCE_KINDS = 16  # the commonest kinds (catalog ranks 0-15), a class each
OTHER = "other"


def visible_kinds(instances: np.ndarray, body_kind: np.ndarray) -> np.ndarray:
    """The kind of each clip's most visible body: instances [N, T, H, W] (1 + body slot at
    each pixel, 0 where no body is), body_kind [N, M] (each slot's kind) -> [N] int64, -1 where
    no body is in view. Ties go to the lower slot."""
    slots = body_kind.shape[1]
    flat = instances.reshape(len(instances), -1).astype(np.int64)
    counts = np.stack([np.bincount(clip, minlength=slots + 1)[1 : slots + 1] for clip in flat])
    most = counts.argmax(axis=1)
    kinds = np.take_along_axis(body_kind.astype(np.int64), most[:, None], axis=1)[:, 0]
    return np.where(counts.max(axis=1) > 0, kinds, -1)


class AppearanceTask(ClassificationTask):
    """The kind classes (module docstring): "kind-0" ... "kind-15" and OTHER."""

    name = "appearance"
    keys = TASKS[name].keys
    headline = TASKS[name].headline

    def __init__(self):
        super().__init__((*(f"kind-{rank}" for rank in range(APPEARANCE_KINDS)), OTHER))

    def targets(self, split: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """{"label": [N] int64}: each clip's class (its most visible body's kind, or OTHER)."""
        kinds = visible_kinds(split["instances"], split["body_kind"])
        common = (kinds >= 0) & (kinds < APPEARANCE_KINDS)
        labels = np.where(common, kinds, APPEARANCE_KINDS)
        return {"label": torch.as_tensor(labels, dtype=torch.int64, device="cpu")}


def build(geometry: ClipGeometry, context: TaskContext) -> AppearanceTask:
    """The appearance task (its classes are fixed: the catalog's commonest kinds and OTHER)."""
    return AppearanceTask()
