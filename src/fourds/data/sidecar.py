"""Ground-truth sidecars: `<video>.npz` beside a synthetic video, read and checked in full.

A sidecar holds the world's ground truth of every frame of its video (fourds.data.shards names
the keys). Every way one can be wrong (not a zip, a cut-off file, a missing key, an object
array, a shape that does not fit the video, non-finite cameras, frames larger than the decode
limit, arrays that would take more memory than allowed: a few MB of compressed zeros can
declare gigabytes) raises `SidecarError` naming the file and the problem, before any array is
loaded whole, so curation rejects that one source and goes on.
"""

from __future__ import annotations

import math
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from fourds.config.schema import MAX_DECODED_MIB
from fourds.data.shards import GROUND_TRUTH_KEYS, OPTIONAL_PER_CLIP
from fourds.errors import SidecarError

# Each array's shape: T is the video's frame count, H and W the depth maps' size, N tracks and
# M boxes are free.
SHAPES: dict[str, tuple[str | int, ...]] = {
    "depth": ("T", "H", "W"),
    "instances": ("T", "H", "W"),
    "intrinsics": ("T", 3, 3),
    "extrinsics": ("T", 4, 4),
    "tracks": ("N", "T", 2),
    "visible": ("N", "T"),
    "track_instance": ("N",),
    "boxes": ("M", "T", 4),
    "box_visible": ("M", "T"),
    "label": (),
    "body_kind": ("M",),  # optional (OPTIONAL_PER_CLIP): a catalog world's kind per body slot
}
FINITE = ("intrinsics", "extrinsics")  # cameras must be finite; depth may hold inf (sky)


def sidecar_path(video_path: Path) -> Path:
    return video_path.with_suffix(".npz")


def load_sidecar(
    path: Path,
    frame_count: int,
    max_frame_pixels: int,
    max_bytes: int = MAX_DECODED_MIB << 20,
    size: int = 0,
) -> dict[str, np.ndarray]:
    """Every ground-truth array of the sidecar `path` of a video of `frame_count` frames.

    Args:
        max_bytes: memory the arrays may take (what curate.max_decoded_mib leaves beside the
            video's frames): their declared shapes and dtypes, plus the depth and instance maps
            resized to size x size.
        size: the side the caller resizes the depth and instance maps to (0: none).

    Returns key -> array with the shapes of SHAPES (T = frame_count); an optional key
    (OPTIONAL_PER_CLIP) only where the sidecar has it.

    Raises:
        SidecarError: the file is unreadable or any array is missing, of object dtype, of a
            shape that does not fit, larger than max_frame_pixels per depth map, over
            max_bytes in all, or (cameras) not finite.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            headers = {name: _header(archive, name) for name in archive.namelist()}
        _check_headers(path, headers, frame_count, max_frame_pixels)
        _check_bytes(path, headers, frame_count * size * size, max_bytes)
        with np.load(path, allow_pickle=False) as data:
            present = [key for key in OPTIONAL_PER_CLIP if f"{key}.npy" in headers]
            truth = {key: data[key] for key in (*GROUND_TRUTH_KEYS, *present)}
    except SidecarError:
        raise
    except (
        OSError,
        ValueError,
        KeyError,
        EOFError,
        SyntaxError,
        NotImplementedError,
        RuntimeError,
        struct.error,
        tokenize.TokenError,
        zipfile.BadZipFile,
        zlib.error,
    ) as error:  # fmt: skip  (what a damaged zip or .npy header raises; found by fuzzing)
        raise SidecarError(f"{path}: unreadable ground-truth sidecar ({error})") from None
    for key in FINITE:
        if not np.isfinite(truth[key]).all():
            raise SidecarError(f"{path}: {key} holds NaN or infinite values")
    return truth


def _header(archive: zipfile.ZipFile, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of one .npy member, read from its header without loading the data."""
    with archive.open(name) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    return shape, dtype


def _check_headers(path, headers, frame_count: int, max_frame_pixels: int) -> None:
    """Check every array's declared shape and dtype against SHAPES."""
    sizes: dict[str, int] = {"T": frame_count}
    for key, expected in SHAPES.items():
        if f"{key}.npy" not in headers:
            if key in OPTIONAL_PER_CLIP:
                continue
            raise SidecarError(f"{path}: missing ground-truth array {key!r}")
        shape, dtype = headers[f"{key}.npy"]
        if dtype.hasobject:
            raise SidecarError(f"{path}: {key} is an object array (only numeric arrays load)")
        if len(shape) != len(expected):
            raise SidecarError(
                f"{path}: {key} has shape {shape}, expected {len(expected)} axes {expected}"
            )
        for axis, (size, want) in enumerate(zip(shape, expected, strict=True)):
            bound = sizes.setdefault(want, size) if isinstance(want, str) else want
            if size != bound:
                what = "the video's frame count" if want == "T" else f"{want}={bound}"
                raise SidecarError(
                    f"{path}: {key} has shape {shape}: axis {axis} is {size}, not {what}"
                )
    if sizes["H"] * sizes["W"] > max_frame_pixels:
        raise SidecarError(
            f"{path}: depth maps of {sizes['H']}x{sizes['W']} exceed "
            f"curate.max_frame_pixels={max_frame_pixels}"
        )


def _check_bytes(path, headers, resized_pixels: int, max_bytes: int) -> None:
    """Check that the arrays `headers` declare, plus the depth and instance maps resized to
    `resized_pixels` pixels in all (resized depth: its dtype, then float16), fit in max_bytes."""
    shapes = {key: headers[f"{key}.npy"] for key in SHAPES if f"{key}.npy" in headers}
    stored = sum(math.prod(shape) * dtype.itemsize for shape, dtype in shapes.values())
    per_pixel = shapes["depth"][1].itemsize + 2 + shapes["instances"][1].itemsize
    total = stored + resized_pixels * per_pixel
    if total > max_bytes:
        raise SidecarError(
            f"{path}: its arrays would take {total >> 20} MiB loaded and resized ({stored >> 20} "
            f"MiB as declared), over the {max_bytes >> 20} MiB curate.max_decoded_mib leaves "
            "beside the video's frames (raise it to curate such sources)"
        )
