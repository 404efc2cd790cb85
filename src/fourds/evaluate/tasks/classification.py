"""Classification: one learned query predicting the clip's label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fourds.config.tasks import TASKS
from fourds.evaluate.metrics import label_ranks
from fourds.evaluate.pictures import labels_figure
from fourds.evaluate.tasks import TaskContext
from fourds.evaluate.tasks.base import ClipGeometry, Evaluation, Infer, batches, fixed_outputs


class ClassificationTask:
    """Clip labels (the synthetic world's: its camera motion; a benchmark's classes); scored
    with top-1 and top-5 accuracy (`fourds.evaluate.metrics.top_k_accuracy`; ties count
    against the label; with 5 classes or fewer top-5 is 1 by definition).

    class_names: the label set, in the order of the readout's outputs: a benchmark's label
    list (SSv2's 174 classes, Kinetics' 400 to 700), or `from_labels` takes it from the clips'
    labels, so the synthetic corpus brings its own classes.
    """

    name = "classification"
    keys = TASKS[name].keys
    headline = TASKS[name].headline
    head = "attention"
    num_queries = 1
    query_dim = 0

    def __init__(self, class_names: tuple[str, ...]):
        self.class_names = class_names
        self.out_dim = len(class_names)

    @classmethod
    def from_labels(cls, labels: np.ndarray) -> ClassificationTask:
        """The task whose classes are the distinct values of `labels` [N], sorted."""
        return cls(tuple(sorted({str(label) for label in labels})))

    def targets(self, split: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """{"label": [N] int64}: each clip's class as an index into `class_names`.

        Raises:
            ValueError: a clip's label is not one of the classes.
        """
        index = {name: i for i, name in enumerate(self.class_names)}
        unknown = sorted({str(label) for label in split["label"]} - set(index))
        if unknown:
            raise ValueError(
                f"labels {unknown} are not among the classes the readout was trained on "
                f"{list(self.class_names)}"
            )
        labels = [index[str(label)] for label in split["label"]]
        return {"label": torch.tensor(labels, dtype=torch.int64, device="cpu")}

    def with_queries(self, batch, generator):
        return batch

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of outputs [B, 1, classes]."""
        return F.cross_entropy(outputs[:, 0], batch["label"])

    def evaluate(self, infer: Infer, targets, batch_size: int):
        labels = targets["label"].numpy()
        logits = np.concatenate(
            [infer(index, None)[:, 0].numpy() for index in batches(len(labels), batch_size)]
        )
        ranks = label_ranks(logits, labels)
        clips = {"top1": (ranks < 1) * 1.0, "top5": (ranks < 5) * 1.0}
        metrics = {name: float(values.mean()) for name, values in clips.items()}
        clips["weight"] = np.ones(len(labels))
        return Evaluation(metrics, {"logits": logits}, clips)

    def baseline(self, train):
        """Chance: every clip gets the most frequent training label (the first of the most
        frequent, in class order), whatever the video."""
        counts = torch.bincount(train["label"], minlength=self.out_dim)
        return fixed_outputs(F.one_hot(counts.argmax(), self.out_dim).float()[None])

    def draw(self, videos, targets, predictions, out_dir: Path) -> list[Path]:
        predicted = predictions["logits"].argmax(axis=1)
        path = out_dir / f"{self.name}.png"
        names = np.array(self.class_names)
        return [labels_figure(videos, names[targets["label"].numpy()], names[predicted], path)]


def build(geometry: ClipGeometry, context: TaskContext) -> ClassificationTask:
    """The classification task over `context`'s classes, or the labels of its splits."""
    if context.classes:
        return ClassificationTask(context.classes)
    return ClassificationTask.from_labels(
        np.concatenate([split["label"] for split in context.splits])
    )
