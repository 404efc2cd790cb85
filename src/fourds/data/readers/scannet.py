"""ScanNet-style depth: 16-bit PNG depth maps in millimetres (0 = no measurement) with the
scene's intrinsics, in the layout ScanNet's frame exporter writes:

    <scene>/color/<i>.jpg                      RGB frames
    <scene>/depth/<i>.png                      uint16 depth, millimetres
    <scene>/pose/<i>.txt                       4x4 camera-to-world matrix (text)
    <scene>/intrinsic/intrinsic_depth.txt      4x4 matrix whose top-left 3x3 is K (text)

Colour frames are resized to the depth maps' size (ScanNet's colour is larger); the depth
intrinsics then describe both. A scene's depth and colour arrays may take at most
`fourds.data.readers.max_decoded_bytes` of its image files' size (checked once the first depth
map is read: a 38 KB PNG can hold 4000x4000 zeros), and each image at most MAX_IMAGE_PIXELS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from fourds.data.readers import (
    MAX_IMAGE_PIXELS,
    ReaderError,
    all_files,
    check_room,
    max_decoded_bytes,
)
from fourds.data.sample import Sample
from fourds.data.video import VideoError


def read_image(path: Path, what: str) -> av.VideoFrame:
    """The first image of the file `path`, of at most MAX_IMAGE_PIXELS pixels.

    Raises:
        VideoError: naming the file as not a readable `what`.
    """
    try:
        with av.open(str(path)) as container:
            for stream in container.streams.video[:1]:
                stream.codec_context.options = {"max_pixels": str(MAX_IMAGE_PIXELS)}
            return next(container.decode(video=0))
    except (av.FFmpegError, OSError, StopIteration) as error:
        raise VideoError(
            f"{path}: not a readable {what} of at most {MAX_IMAGE_PIXELS} pixels ({error})"
        ) from None


def read_depth_png(path: str | Path) -> np.ndarray:
    """A 16-bit depth PNG in millimetres -> float32 [H, W] metres (0 where unmeasured)."""
    frame = read_image(Path(path), "16-bit PNG")
    if frame.format.name not in ("gray16be", "gray16le"):
        raise VideoError(f"{path}: depth must be a 16-bit greyscale PNG, not {frame.format.name}")
    return frame.to_ndarray(format="gray16le").astype(np.float32) / 1000.0


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


def samples(path: Path, size: int, videos: str = "") -> Iterator[Sample]:
    """Every exported scene of a split folder (a sub-folder with depth/), in name order, read
    as the iterator reaches it (at its own size: fourds.data.benchmarks resizes)."""
    scenes = sorted(scene for scene in path.iterdir() if (scene / "depth").is_dir())
    if not scenes:
        raise FileNotFoundError(f"{path}: no exported scene (a sub-folder with depth/)")
    return (read_scene(scene) for scene in scenes)


def files(path: Path, videos: str = "") -> list[Path]:
    """Every file of the split folder."""
    return all_files(path)


def read_scene(scene_dir: str | Path) -> Sample:
    """Every exported frame of a scene, in index order, as one Sample with depth and cameras."""
    scene_dir = Path(scene_dir)
    indices = sorted(int(path.stem) for path in (scene_dir / "depth").glob("*.png"))
    if not indices:
        raise FileNotFoundError(f"{scene_dir}/depth: no depth PNGs")
    depth, video = _images(scene_dir, indices)
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


def _images(scene_dir: Path, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The scene's depth maps, float32 [T, H, W] metres, and its colour frames resized to them,
    uint8 [T, H, W, 3], for frame `indices`; checked to fit max_decoded_bytes of the files
    once the first depth map gives H and W.

    Raises:
        ReaderError: they would take more, or a depth map's size differs from the first's.
    """
    depth_paths = [scene_dir / "depth" / f"{i}.png" for i in indices]
    colour_paths = [scene_dir / "color" / f"{i}.jpg" for i in indices]
    first = read_depth_png(depth_paths[0])
    (height, width), count = first.shape, len(indices)
    read = sum(path.stat().st_size for path in depth_paths + colour_paths if path.is_file())
    what = f"{count} frames of {width}x{height} depth and colour"
    check_room(str(scene_dir), what, count * height * width * 7, max_decoded_bytes(read))
    depth = np.empty((count, height, width), np.float32)  # 4 bytes a pixel, colour 3
    video = np.empty((count, height, width, 3), np.uint8)
    for index, (depth_path, colour_path) in enumerate(zip(depth_paths, colour_paths, strict=True)):
        frame_depth = first if index == 0 else read_depth_png(depth_path)
        depth[index] = _same_size(frame_depth, depth_path, first.shape)
        video[index] = _colour(colour_path, width, height)
    return depth, video


def _same_size(depth: np.ndarray, path: Path, shape: tuple[int, int]) -> np.ndarray:
    """`depth` [H, W] read from `path`, if it has the scene's `shape`; else ReaderError."""
    if depth.shape != shape:
        raise ReaderError(
            f"{path}: a {depth.shape[1]}x{depth.shape[0]} depth map; the scene's first is "
            f"{shape[1]}x{shape[0]}"
        )
    return depth


def _colour(path: Path, width: int, height: int) -> np.ndarray:
    frame = read_image(path, "image")
    return frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
