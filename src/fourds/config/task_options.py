"""The options of one readout task, under `readouts.<task>.options` in params.yaml.

A task with options of its own declares them as a `TaskOptions` section, as these do, and
names the section in its entry of the task table (`TaskEntry.options`, fourds.config.tasks); a
task without any takes `TaskOptions`, an empty section (`options: {}`). Each readout stage
reads, and DVC tracks, only its own task's options.
"""

from __future__ import annotations

import typing
from typing import Literal

from pydantic.dataclasses import dataclass

from fourds.config.section import SECTION, Fraction, PositiveRange, Section, require

DepthAlignment = Literal["none", "median", "least_squares"]
DepthAveraging = Literal["per_image", "pooled"]
DepthLoss = Literal["log_l1", "abs_rel"]
PosePairs = Literal["first", "all"]
PoseHead = Literal["attention", "correlation"]
TrackingQueries = Literal["random", "first"]
TrackingHead = Literal["attention", "motion"]
DEPTH_ALIGNMENTS = typing.get_args(DepthAlignment)
DEPTH_AVERAGINGS = typing.get_args(DepthAveraging)
POSE_PAIRS = typing.get_args(PosePairs)


@dataclass(frozen=True, config=SECTION)
class TaskOptions(Section):
    """The options of a task without any of its own (`options: {}`), and the base of every
    task's options section."""


@dataclass(frozen=True, config=SECTION)
class DepthOptions(TaskOptions):
    """How depth is read out and scored.

    alignment: how predictions are aligned to the truth, per clip, before scoring.
    averaging: "per_image" averages each frame's metrics over frames (the published protocols);
        "pooled" pools every valid pixel of the test set.
    range: [min, max] metres: ground truth outside (min, max) is not scored, predictions are
        clamped to [min, max] (fourds.evaluate.metrics.DepthProtocol).
    loss: what a trained readout minimises over valid pixels: "log_l1", L1 on log-depth;
        "abs_rel", the relative error |d - d*| / d* the headline scores, plus 0.1 x the L1 on
        log-depth.
    """

    alignment: DepthAlignment
    averaging: DepthAveraging
    range: PositiveRange
    loss: DepthLoss

    def check(self, path: str) -> None:
        low, high = self.range
        require(low < high, f"{path}.range={[low, high]} must be [min, max] with min < max")


@dataclass(frozen=True, config=SECTION)
class PoseOptions(TaskOptions):
    """How camera pose is read out and scored.

    pairs: "first" scores poses over the frame pairs (0, t); "all" over every pair i < j.
    head: "attention", the 4DS attention readout of every task (fourds.models.readout);
        "correlation", local feature correlations between tubelets (fourds.models.
        pose_readout), which reads camera motion where the attention readout does not.
    """

    pairs: PosePairs
    head: PoseHead


@dataclass(frozen=True, config=SECTION)
class TrackingOptions(TaskOptions):
    """How points are tracked.

    queries: the frame a readout's training queries are taken at: "first", each point's first
        visible frame (as the headline's query mode scores it); "random", one of its visible
        frames at random.
    static: a point whose predicted displacement from its query point is below this fraction
        of the frame size is predicted to stay at the query point (0: never).
    head: "attention", the 4DS attention readout; "motion", the attention readout plus each
        query point moved with the image's motion, an affine map per frame read from local
        feature correlations (fourds.models.tracking_readout), with a visibility term for
        points that leave the frame.
    """

    queries: TrackingQueries
    static: Fraction
    head: TrackingHead


__all__ = [
    "DEPTH_ALIGNMENTS",
    "DEPTH_AVERAGINGS",
    "POSE_PAIRS",
    "DepthOptions",
    "PoseOptions",
    "TaskOptions",
    "TrackingOptions",
]
