"""PNG examples for the report: readout predictions (one figure per task) and MAE
reconstructions.

Every function takes a few test clips (videos uint8 [n, T, H, W, 3]) with their truth and
prediction, writes one PNG atomically and returns its path.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fourds.atomic import atomic_path  # noqa: E402
from fourds.evaluate.reconstruction import Reconstruction  # noqa: E402

TRUE, PREDICTED = "#2ca02c", "#d62728"


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial:
        figure.savefig(partial, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def _key_frames(frames: int) -> list[int]:
    return sorted({0, frames // 2, frames - 1})


def depth_figure(videos, truth, prediction, path: Path) -> Path:
    """Per clip and key frame: the frame, the true depth and the predicted depth (same scale)."""
    frames = _key_frames(videos.shape[1])
    figure, axes = plt.subplots(len(videos), 3 * len(frames), squeeze=False,
                                figsize=(2 * 3 * len(frames), 2 * len(videos)))  # fmt: skip
    for row, (video, true, predicted) in enumerate(zip(videos, truth, prediction, strict=True)):
        valid = true[true > 0]
        low, high = (valid.min(), valid.max()) if valid.size else (0.0, 1.0)
        for column, frame in enumerate(frames):
            panels = [(video[frame], "frame"), (true[frame], "true depth"),
                      (predicted[frame], "predicted")]  # fmt: skip
            for offset, (image, title) in enumerate(panels):
                axis = axes[row, 3 * column + offset]
                if image.ndim == 3:
                    axis.imshow(image)
                else:
                    axis.imshow(image, cmap="magma_r", vmin=low, vmax=high)
                axis.set_title(f"t={frame} {title}", fontsize=7)
                axis.axis("off")
    return _save(figure, path)


def tracks_figure(videos, truth, prediction, path: Path) -> Path:
    """Key frames of the first clip: true points (green) and predicted (red); hollow markers
    are occluded (truth) or predicted occluded."""
    (tracks, visible), (predicted, predicted_visible) = truth, prediction
    frames = _key_frames(videos.shape[1])
    figure, axes = plt.subplots(1, len(frames), squeeze=False, figsize=(3 * len(frames), 3))
    for axis, frame in zip(axes[0], frames, strict=True):
        axis.imshow(videos[0, frame])
        queried = ~np.isnan(predicted[0, :, frame, 0])
        for points, seen, colour in (
            (tracks[0, queried, frame], visible[0, queried, frame], TRUE),
            (predicted[0, queried, frame], predicted_visible[0, queried, frame], PREDICTED),
        ):
            axis.scatter(*points[seen].T, s=12, c=colour)
            axis.scatter(*points[~seen].T, s=12, facecolors="none", edgecolors=colour)
        axis.set_xlim(0, videos.shape[3])
        axis.set_ylim(videos.shape[2], 0)
        axis.set_title(f"t={frame}", fontsize=7)
        axis.axis("off")
    figure.suptitle("true (green) and predicted (red) points; hollow: occluded", fontsize=8)
    return _save(figure, path)


def boxes_figure(videos, truth, prediction, path: Path) -> Path:
    """Key frames of each clip: true boxes (green, where visible) and predicted (red, dashed)."""
    boxes, visible = truth
    frames = _key_frames(videos.shape[1])
    figure, axes = plt.subplots(len(videos), len(frames), squeeze=False,
                                figsize=(3 * len(frames), 3 * len(videos)))  # fmt: skip
    for row, video in enumerate(videos):
        queried = visible[row, :, 0]
        for axis, frame in zip(axes[row], frames, strict=True):
            axis.imshow(video[frame])
            for obj in np.flatnonzero(queried):
                if visible[row, obj, frame]:
                    _rectangle(axis, boxes[row, obj, frame], TRUE, "-")
                _rectangle(axis, prediction[row, obj, frame], PREDICTED, "--")
            axis.set_title(f"t={frame}", fontsize=7)
            axis.axis("off")
    return _save(figure, path)


def _rectangle(axis, box, colour: str, style: str) -> None:
    x0, y0, x1, y1 = box
    axis.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour,
                                 linestyle=style, linewidth=1.5))  # fmt: skip


def pose_figure(truth, prediction, path: Path) -> Path:
    """Top-down (x, z) camera centres relative to frame 0, true vs predicted, per clip."""
    figure, axes = plt.subplots(1, len(truth), squeeze=False, figsize=(3 * len(truth), 3))
    for axis, true, predicted in zip(axes[0], truth, prediction, strict=True):
        for poses, colour, label in ((true, TRUE, "true"), (predicted, PREDICTED, "predicted")):
            centres = -np.einsum("tji,tj->ti", poses[:, :3, :3], poses[:, :3, 3])
            axis.plot(centres[:, 0], centres[:, 2], "o-", color=colour, markersize=3, label=label)
        axis.set_aspect("equal", adjustable="datalim")
        axis.set_xlabel("x (frame 0 camera)", fontsize=7)
        axis.set_ylabel("z", fontsize=7)
        axis.legend(fontsize=6)
    return _save(figure, path)


def labels_figure(videos, true_names, predicted_names, path: Path) -> Path:
    """The middle frame of each clip, titled with its true and predicted label."""
    figure, axes = plt.subplots(1, len(videos), squeeze=False, figsize=(2.5 * len(videos), 2.8))
    for axis, video, true, predicted in zip(axes[0], videos, true_names, predicted_names,
                                            strict=True):  # fmt: skip
        axis.imshow(video[len(video) // 2])
        colour = TRUE if true == predicted else PREDICTED
        axis.set_title(f"true {true}\npredicted {predicted}", fontsize=8, color=colour)
        axis.axis("off")
    return _save(figure, path)


def reconstruction_figure(reconstruction: Reconstruction, frames: list[int], path: Path) -> Path:
    """Per clip three rows, masked input / reconstruction / target, over `frames`."""
    rows = [("masked", reconstruction.masked_input), ("reconstruction", reconstruction.composite),
            ("target", reconstruction.target)]  # fmt: skip
    clips = len(reconstruction.target)
    figure, axes = plt.subplots(3 * clips, len(frames), squeeze=False,
                                figsize=(1.2 * len(frames), 1.2 * 3 * clips))  # fmt: skip
    for clip in range(clips):
        for offset, (label, video) in enumerate(rows):
            for column, frame in enumerate(frames):
                axis = axes[3 * clip + offset, column]
                axis.imshow(np.asarray(video[clip, frame]), interpolation="nearest")
                axis.set_xticks([])
                axis.set_yticks([])
                if column == 0:
                    axis.set_ylabel(f"clip {clip}\n{label}", fontsize=6)
                if clip == 0 and offset == 0:
                    axis.set_title(f"t={frame}", fontsize=7)
    return _save(figure, path)
