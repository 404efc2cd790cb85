"""Camera pose: one learned query per frame, predicting that camera relative to frame 0's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fourds.config.tasks import TASKS
from fourds.evaluate.metrics import pose_metrics
from fourds.evaluate.pictures import pose_figure
from fourds.evaluate.tasks import TaskContext
from fourds.evaluate.tasks.base import (
    ClipGeometry,
    Evaluation,
    Infer,
    batches,
    fixed_outputs,
    per_clip_values,
)


def rotation_from_6d(values: torch.Tensor) -> torch.Tensor:
    """[..., 6] two unnormalised rotation columns -> [..., 3, 3] rotation (Gram-Schmidt)."""
    first = F.normalize(values[..., :3], dim=-1)
    second = values[..., 3:]
    second = F.normalize(second - (first * second).sum(-1, keepdim=True) * first, dim=-1)
    return torch.stack([first, second, torch.cross(first, second, dim=-1)], dim=-1)


def relative_to_first(world_to_camera: torch.Tensor) -> torch.Tensor:
    """[N, T, 4, 4] world-to-camera -> [N, T, 4, 4] camera-0-to-camera-t (frame 0: identity)."""
    return world_to_camera @ torch.linalg.inv(world_to_camera[:, :1])


IDENTITY_6D = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], device="cpu")
# Scene units within which the translation loss is quadratic (Huber's delta), linear beyond it;
# orbit clips move the camera about 2.5 units, dolly clips 0.8, pan and static clips not at all
TRANSLATION_DELTA = 1.0


class PoseTask:
    """Relative camera poses; scored as on RealEstate10K (rotation, translation, EPE, AUC).

    Query t outputs 9 numbers: two columns of the rotation from frame 0's camera to frame t's
    (the 6D representation, as an offset from the identity's) and the translation, in scene
    units. Metrics are computed per clip over its frame pairs (`pairs`: "first", the pairs
    (0, t); "all", every pair i < j; fourds.evaluate.metrics.frame_pairs) and averaged over
    clips. `head` names the readout (fourds.evaluate.readout.HEADS): "attention" or
    "correlation".
    """

    name = "pose"
    keys = TASKS[name].keys
    headline = TASKS[name].headline
    query_dim = 0
    out_dim = 9

    def __init__(self, geometry: ClipGeometry, pairs: str, head: str = "attention"):
        self.num_queries = geometry.frames
        self.pairs, self.head = pairs, head

    def targets(self, split: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """{"relative": [N, T, 4, 4] float32 camera-0-to-camera-t transforms}."""
        extrinsics = torch.from_numpy(split["extrinsics"].astype(np.float64))
        return {"relative": relative_to_first(extrinsics).float()}

    def with_queries(self, batch, generator):
        return batch

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """outputs [B, T, 9] -> [B, T, 4, 4] camera-0-to-camera-t transforms."""
        poses = torch.eye(4, device=outputs.device).repeat(*outputs.shape[:2], 1, 1)
        poses[..., :3, :3] = rotation_from_6d(outputs[..., :6] + IDENTITY_6D.to(outputs))
        poses[..., :3, 3] = outputs[..., 6:]
        return poses

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """L1 on the rotation matrices plus Huber (TRANSLATION_DELTA) on the translations.

        Not L1 on the translations (docs/research/embedded-study.md, section 34): half the clips
        (pan, static) have no translation, so L1 puts the readout's start (zero outputs) on a kink
        where those clips pull any prediction back to zero at full strength; the readout sat
        there for 150-600 steps and left it at a step that a 1e-6 change of the features moved
        by hundreds of steps, ending at another training loss. Huber pulls in proportion to
        the prediction near zero and, like L1, linearly on large errors."""
        truth = batch["relative"]
        rotation = rotation_from_6d(outputs[..., :6] + IDENTITY_6D.to(outputs))
        rotation = (rotation - truth[..., :3, :3]).abs().mean()
        translation = F.huber_loss(outputs[..., 6:], truth[..., :3, 3], delta=TRANSLATION_DELTA)
        return rotation + translation

    def evaluate(self, infer: Infer, targets, batch_size: int):
        truth = targets["relative"].numpy().astype(np.float64)
        prediction = np.concatenate(
            [self.predict(infer(index, None)).numpy() for index in batches(len(truth), batch_size)]
        ).astype(np.float64)
        per_clip = [pose_metrics(p, t, self.pairs) for p, t in zip(prediction, truth, strict=True)]
        metrics = {}
        for key in per_clip[0]:  # translation_error is nan for clips whose camera never moves
            values = [clip[key] for clip in per_clip if np.isfinite(clip[key])]
            if values:
                metrics[key] = float(np.mean(values))
        clips = per_clip_values(per_clip)
        clips["weight"] = np.isfinite(clips[self.headline]).astype(float)
        return Evaluation(metrics, {"relative": prediction.astype(np.float32)}, clips)

    def baseline(self, train):
        """No camera motion: the identity pose in every frame (zero outputs)."""
        return fixed_outputs(torch.zeros(self.num_queries, self.out_dim, device="cpu"))

    def draw(self, videos, targets, predictions, out_dir: Path) -> list[Path]:
        path = out_dir / "pose.png"
        return [pose_figure(targets["relative"].numpy(), predictions["relative"], path)]


def build(geometry: ClipGeometry, context: TaskContext) -> PoseTask:
    """The pose task for clips of `geometry`, its frame pairs and head as its options say."""
    return PoseTask(geometry, context.options.pairs, context.options.head)
