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
DEPTH_COLOURS = "magma_r"  # near: light
GAP = 2  # pixels between the tiles of a mosaic
DPI = 100


def _save(figure, path: Path, tight: bool = True) -> Path:
    """Write `figure` to `path` (trimmed to what it draws where `tight`) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial:
        figure.savefig(partial, format="png", dpi=DPI, bbox_inches="tight" if tight else None)
    plt.close(figure)
    return path


def _key_frames(frames: int) -> list[int]:
    return sorted({0, frames // 2, frames - 1})


def depth_figure(videos, truth, prediction, path: Path) -> Path:
    """Per clip and key frame: the frame, the true depth and the predicted depth (same scale,
    the clip's valid true depths)."""
    frames = _key_frames(videos.shape[1])
    rows = []
    for video, true, predicted in zip(videos, truth, prediction, strict=True):
        valid = true[true > 0]
        low, high = (valid.min(), valid.max()) if valid.size else (0.0, 1.0)
        coloured = [_depth_colours(depth, low, high) for depth in (true, predicted)]
        rows.append([tile[frame] for frame in frames for tile in (video, *coloured)])
    titles = [f"t={frame} {name}" for frame in frames
              for name in ("frame", "true depth", "predicted")]  # fmt: skip
    figure, _, _ = _mosaic(rows, titles, [f"clip {row}" for row in range(len(rows))])
    return _save(figure, path, tight=False)


def _depth_colours(depth: np.ndarray, low: float, high: float) -> np.ndarray:
    """depth [..., H, W] as uint8 RGB [..., H, W, 3] on DEPTH_COLOURS from `low` to `high`."""
    scaled = np.clip((depth - low) / max(high - low, 1e-12), 0.0, 1.0)
    return (matplotlib.colormaps[DEPTH_COLOURS](scaled)[..., :3] * 255).round().astype(np.uint8)


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
    rows = [[video[frame] for frame in frames] for video in videos]
    figure, axis, corners = _mosaic(rows, [f"t={frame}" for frame in frames], None)
    frame_size = np.tile(videos.shape[3:1:-1], 2)  # (W, H, W, H): a box is cut at its frame
    for row in range(len(videos)):
        for column, frame in enumerate(frames):
            corner = np.tile(corners[row][column], 2)  # (x, y, x, y) of the tile's corner
            for obj in np.flatnonzero(visible[row, :, 0]):  # the objects queried
                if visible[row, obj, frame]:
                    box = np.clip(boxes[row, obj, frame], 0, frame_size)
                    _rectangle(axis, box + corner, TRUE, "-")
                box = np.clip(prediction[row, obj, frame], 0, frame_size)
                _rectangle(axis, box + corner, PREDICTED, "--")
    return _save(figure, path, tight=False)


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
    kinds = [("masked", reconstruction.masked_input), ("reconstruction", reconstruction.composite),
             ("target", reconstruction.target)]  # fmt: skip
    rows, names = [], []
    for clip in range(len(reconstruction.target)):
        for label, video in kinds:
            rows.append([np.asarray(video[clip, frame]) for frame in frames])
            names.append(f"clip {clip}\n{label}")
    figure, _, _ = _mosaic(rows, [f"t={frame}" for frame in frames], names, tile_inches=1.2)
    return _save(figure, path, tight=False)


def _mosaic(
    rows: list[list[np.ndarray]], column_titles: list[str], row_titles: list[str] | None,
    tile_inches: float = 1.5,
) -> tuple[matplotlib.figure.Figure, matplotlib.axes.Axes, list[list[np.ndarray]]]:  # fmt: skip
    """One image of uint8 RGB tiles (rows of [H, W, 3], all one size, GAP pixels apart) on a
    single axes, each column titled and each row named (None: unnamed): a figure of many
    pictures drawn as one, in a fraction of the time an axes per picture takes.

    Returns the figure, its axes (in the image's pixels) and each tile's top-left corner
    (x, y) in them, per row and column."""
    height, width = rows[0][0].shape[:2]
    grid = np.full(
        (len(rows) * (height + GAP) - GAP, len(rows[0]) * (width + GAP) - GAP, 3), 255, np.uint8
    )
    corners = [[np.array([column * (width + GAP), row * (height + GAP)]) for column in
                range(len(tiles))] for row, tiles in enumerate(rows)]  # fmt: skip
    for tiles, row_corners in zip(rows, corners, strict=True):
        for tile, (x, y) in zip(tiles, row_corners, strict=True):
            grid[y : y + height, x : x + width] = tile
    top, left = 0.2, (0.7 if row_titles else 0.05)  # inches, for the titles and names
    size = (left + tile_inches * len(rows[0]), top + tile_inches * len(rows))
    figure = plt.figure(figsize=size)
    axis = figure.add_axes((left / size[0], 0, 1 - left / size[0], 1 - top / size[1]))
    axis.imshow(grid, interpolation="nearest")
    axis.axis("off")
    for (x, _), title in zip(corners[0], column_titles, strict=True):
        axis.text(x + width / 2, -GAP, title, fontsize=7, ha="center", va="bottom")
    for row, name in enumerate(row_titles or []):
        x, y = corners[row][0]
        axis.text(x - GAP, y + height / 2, name, fontsize=6, ha="right", va="center")
    return figure, axis, corners
