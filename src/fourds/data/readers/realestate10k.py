"""RealEstate10K camera files: per-frame timestamps, intrinsics and world-to-camera poses.

The public format, one file per clip: the first line is the video's URL; then one line per
frame with 19 numbers:

    timestamp_us fx fy cx cy 0 0 r11 r12 r13 t1 r21 r22 r23 t2 r31 r32 r33 t3

fx, fy, cx, cy are normalised by the image width and height; the 3x4 matrix [R | t] maps world
to camera coordinates (row-major). Rotations in the files are orthonormal only to about 1e-7,
which is tolerated; anything further off is reported, as are non-finite numbers, a negative or
non-increasing timestamp and a focal length that is not positive.

A split is a folder of camera files <clip>.txt, each beside its video <clip>.<ext> in any
container PyAV decodes; camera line i shows the video frame at its timestamp, frame
round(timestamp * fps).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fourds.data.decode import decode_video
from fourds.data.readers import (
    ReaderError,
    all_files,
    annotation_files,
    check_room,
    max_decoded_bytes,
    paired_video,
)
from fourds.data.sample import Sample

ORTHONORMAL_TOLERANCE = 1e-5


@dataclasses.dataclass(frozen=True)
class CameraTrack:
    """url: the source video; timestamps: float64 [T] seconds; intrinsics: float32 [T, 3, 3]
    pixels of a width x height image; extrinsics: float32 [T, 4, 4] world-to-camera."""

    url: str
    timestamps: np.ndarray
    intrinsics: np.ndarray
    extrinsics: np.ndarray


def samples(path: Path, size: int, videos: str = "") -> Iterator[Sample]:
    """Every clip of a split folder at size x size (video stretched), read as the iterator
    reaches it."""
    cameras = annotation_files(path, (".txt",), "realestate10k")
    return (clip_sample(camera, size) for camera in cameras)


def files(path: Path, videos: str = "") -> list[Path]:
    """Every file of the split folder."""
    return all_files(path)


def clip_sample(camera_path: Path, size: int) -> Sample:
    """A clip: the video frames its camera lines name, with their cameras (a frame as often as
    cameras name it, within max_decoded_bytes of the two files)."""
    video_path = paired_video(camera_path)
    video = decode_video(video_path, size, crop="stretch")
    track = read_camera_file(camera_path, size, size)
    index = np.round(track.timestamps * video.fps).astype(np.int64)
    if index.max() >= len(video.frames):
        raise ReaderError(
            f"{camera_path}: a camera at {track.timestamps.max():.3f} s is past the end of "
            f"{video_path.name} ({len(video.frames)} frames at {video.fps:g} fps)"
        )
    read = camera_path.stat().st_size + video_path.stat().st_size
    what = f"{len(index)} cameras' frames at {size}x{size}"
    check_room(str(camera_path), what, len(index) * video.frames[0].nbytes, max_decoded_bytes(read))
    return Sample(
        name=camera_path.name,
        video=video.frames[index],
        intrinsics=track.intrinsics,
        extrinsics=track.extrinsics,
    )


def read_camera_file(path: str | Path, width: int, height: int) -> CameraTrack:
    """Parse one RealEstate10K camera file for frames of width x height pixels.

    Raises:
        ReaderError: naming the file and line, for a malformed line, a NaN or infinite number, a
            negative or non-increasing timestamp, a focal length <= 0 or a non-rotation matrix.
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        raise ReaderError(f"{path}: expected a URL line and at least one camera line")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [float(field) for field in fields]
        except ValueError:
            raise ReaderError(f"{path}:{number}: not a line of numbers") from None
        if len(values) != 19:
            raise ReaderError(f"{path}:{number}: {len(values)} numbers, expected 19")
        _check_line(path, number, values, rows[-1][0] if rows else None)
        rows.append(values)
    if not rows:
        raise ReaderError(f"{path}: no camera lines after the URL line")
    table = np.asarray(rows, dtype=np.float64)
    intrinsics = np.zeros((len(table), 3, 3))
    intrinsics[:, 0, 0], intrinsics[:, 1, 1] = table[:, 1] * width, table[:, 2] * height
    intrinsics[:, 0, 2], intrinsics[:, 1, 2] = table[:, 3] * width, table[:, 4] * height
    intrinsics[:, 2, 2] = 1.0
    extrinsics = np.tile(np.eye(4), (len(table), 1, 1))
    extrinsics[:, :3, :] = table[:, 7:].reshape(-1, 3, 4)
    rotations = extrinsics[:, :3, :3]
    with np.errstate(over="ignore", invalid="ignore"):
        error = np.abs(rotations @ rotations.transpose(0, 2, 1) - np.eye(3)).max(axis=(1, 2))
    error = np.nan_to_num(error, nan=np.inf)
    if (bad := np.flatnonzero(error > ORTHONORMAL_TOLERANCE)).size:
        raise ReaderError(
            f"{path}:{bad[0] + 2}: the pose's rotation is off orthonormal by {error[bad[0]]:.1e}"
        )
    if not np.isfinite(intrinsics.astype(np.float32)).all():
        raise ReaderError(f"{path}: intrinsics in pixels of {width}x{height} overflow float32")
    return CameraTrack(
        url=lines[0].strip(),
        timestamps=table[:, 0] / 1e6,
        intrinsics=intrinsics.astype(np.float32),
        extrinsics=extrinsics.astype(np.float32),
    )


def _check_line(path: Path, number: int, values: list[float], previous: float | None) -> None:
    """One camera line's numbers: finite, timestamp >= 0 and after the previous line's,
    positive focal lengths."""
    with np.errstate(over="ignore"):
        finite = np.isfinite(np.asarray(values, np.float32))  # as they will be stored
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise ReaderError(
            f"{path}:{number}: number {bad + 1} is {values[bad]:g} (not a finite float32)"
        )
    timestamp = values[0]
    if timestamp < 0:
        raise ReaderError(f"{path}:{number}: negative timestamp {timestamp:g} us")
    if previous is not None and timestamp <= previous:
        raise ReaderError(
            f"{path}:{number}: timestamp {timestamp:g} us does not come after the previous "
            f"line's {previous:g} us"
        )
    if values[1] <= 0 or values[2] <= 0:
        raise ReaderError(
            f"{path}:{number}: focal lengths fx={values[1]:g} fy={values[2]:g} must be > 0"
        )
