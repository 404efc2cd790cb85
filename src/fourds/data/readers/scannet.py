"""ScanNet-style depth: 16-bit PNG depth maps in millimetres (0 = no measurement) with the
scene's intrinsics, in the layout ScanNet's frame exporter writes:

    <scene>/color/<i>.jpg                      RGB frames
    <scene>/depth/<i>.png                      uint16 depth, millimetres
    <scene>/pose/<i>.txt                       4x4 camera-to-world matrix (text)
    <scene>/intrinsic/intrinsic_depth.txt      4x4 matrix whose top-left 3x3 is K (text)

Colour frames are resized to the depth maps' size (ScanNet's colour is larger); the depth
intrinsics then describe both.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from fourds.data.readers import ReaderError
from fourds.data.sample import Sample
from fourds.data.video import VideoError


def read_depth_png(path: str | Path) -> np.ndarray:
    """A 16-bit depth PNG in millimetres -> float32 [H, W] metres (0 where unmeasured)."""
    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            depth = frame.to_ndarray(format="gray16le")
    except (av.FFmpegError, OSError, StopIteration) as error:
        raise VideoError(f"{path}: not a readable 16-bit PNG ({error})") from None
    if frame.format.name not in ("gray16be", "gray16le"):
        raise VideoError(f"{path}: depth must be a 16-bit greyscale PNG, not {frame.format.name}")
    return depth.astype(np.float32) / 1000.0


def read_matrix(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """A whitespace-separated text matrix of `shape` -> float64 array.

    Raises:
        ReaderError: naming the file: not a matrix of `shape`, or a NaN or infinite entry.
    """
    try:
        matrix = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as error:
        raise ReaderError(f"{path}: not a text matrix ({error})") from None
    if matrix.shape != shape:
        raise ReaderError(f"{path}: a {matrix.shape} matrix, expected {shape}")
    if not np.isfinite(matrix).all():
        raise ReaderError(
            f"{path}: holds NaN or infinite values (ScanNet writes -inf for frames without a "
            "pose: leave those frames out of the export)"
        )
    return matrix


def read_scene(scene_dir: str | Path) -> Sample:
    """Every exported frame of a scene, in index order, as one Sample with depth and cameras."""
    scene_dir = Path(scene_dir)
    indices = sorted(int(path.stem) for path in (scene_dir / "depth").glob("*.png"))
    if not indices:
        raise FileNotFoundError(f"{scene_dir}/depth: no depth PNGs")
    depth = np.stack([read_depth_png(scene_dir / "depth" / f"{i}.png") for i in indices])
    height, width = depth.shape[1:]
    video = np.stack([_colour(scene_dir / "color" / f"{i}.jpg", width, height) for i in indices])
    camera_to_world = np.stack(
        [read_matrix(scene_dir / "pose" / f"{i}.txt", (4, 4)) for i in indices]
    )
    intrinsics = read_matrix(scene_dir / "intrinsic" / "intrinsic_depth.txt", (4, 4))[:3, :3]
    return Sample(
        name=scene_dir.name,
        video=video,
        depth=depth,
        intrinsics=np.repeat(intrinsics[None], len(indices), axis=0).astype(np.float32),
        extrinsics=np.linalg.inv(camera_to_world).astype(np.float32),
    )


def _colour(path: Path, width: int, height: int) -> np.ndarray:
    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
    except (av.FFmpegError, OSError, StopIteration) as error:
        raise VideoError(f"{path}: not a readable image ({error})") from None
    return frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
