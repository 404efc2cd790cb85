"""The structures the benchmark readers produce: `Sample`, a clip with the fields of the
synthetic world's truth (a field is None when the source has no such ground truth), and
`LabelledVideo`, a video a classification benchmark's split file lists.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np


@dataclasses.dataclass
class Sample:
    """One clip and its ground truth, in the raster frame of `video`: (0, 0) is the top-left
    corner of the top-left pixel, x to the right, y down.

    name: where it came from (file and record).
    video: uint8 [T, H, W, 3] RGB.
    depth: float32 [T, H, W] z-depth in metres; 0 marks pixels without a measurement.
    intrinsics: float32 [T, 3, 3] pinhole intrinsics in pixels.
    extrinsics: float32 [T, 4, 4] world-to-camera transforms (OpenCV axes).
    tracks: float32 [N, T, 2] (x, y) positions of N tracked points.
    visible: bool [N, T] whether each tracked point is visible (not occluded).
    boxes: float32 [M, T, 4] (x0, y0, x1, y1) boxes of M objects.
    box_visible: bool [M, T] whether each object's box is annotated (in view).
    label: the clip's class name.
    """

    name: str
    video: np.ndarray
    depth: np.ndarray | None = None
    intrinsics: np.ndarray | None = None
    extrinsics: np.ndarray | None = None
    tracks: np.ndarray | None = None
    visible: np.ndarray | None = None
    boxes: np.ndarray | None = None
    box_visible: np.ndarray | None = None
    label: str | None = None


class LabelledVideo(NamedTuple):
    """One video of a classification benchmark's split file.

    file: the video's file name (no folder).
    label: its class name.
    entry: where the split file says so ("<file>: line 3"), for messages.
    """

    file: str
    label: str
    entry: str
