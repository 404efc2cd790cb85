"""TAP-Vid point-tracking pickles (DAVIS, RGB-Stacking, Kinetics) -> `Sample`s at 256x256.

The public files, read through the restricted unpickler (fourds.data.readers.safe_pickle):

- DAVIS: dict name -> {"video": uint8 [T, H, W, 3], "points": float [N, T, 2], "occluded":
  bool [N, T]};
- RGB-Stacking: a list of such records (no names);
- Kinetics: a list of such records whose "video" holds one JPEG-encoded byte string per frame.

Points are (x, y) in normalised raster coordinates ((0, 0) the top-left corner of the top-left
pixel, (1, 1) the bottom-right corner of the bottom-right one); they become raster pixels of
the resized video by multiplying by its size, as the benchmark's own readers do. Videos are
resized to `size` x `size` (bilinear), the resolution the TAP-Vid metrics are defined at.

Memory is bounded by the file, not by what it claims: a pickle can reference one JPEG (or one
tiny frame of pixels) any number of times, and each reference decodes to size x size pixels
(196 KB at 256x256). The frames of all records together may take at most
`fourds.data.readers.max_decoded_bytes` of the file's size once resized (checked before a record
is decoded), each JPEG may declare at most MAX_IMAGE_PIXELS pixels, and frames are decoded and
resized one at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fourds.data.readers import ReaderError, check_room, max_decoded_bytes
from fourds.data.readers.jpeg import decode_jpeg
from fourds.data.readers.safe_pickle import load_data_pickle
from fourds.data.sample import Sample
from fourds.data.video import frames_from_pixels, resize_frames

TAPVID_SIZE = 256


def samples(path: Path, size: int, videos: str = "") -> Iterator[Sample]:
    """The records of a TAP-Vid pickle, or of a folder's pickles in name order (a pickle's
    records read together, as the iterator reaches it)."""
    return (sample for pickle in pickles(path) for sample in read_tapvid(pickle, size))


def files(path: Path, videos: str = "") -> list[Path]:
    """The pickles a split reads."""
    return pickles(path)


def pickles(path: Path) -> list[Path]:
    """The TAP-Vid pickles a split names: the file, or the *.pkl files directly in the folder in
    name order (as TAP-Vid-Kinetics ships, beside its README and CSV)."""
    if path.is_file():
        return [path]
    found = sorted(child for child in path.iterdir() if child.suffix == ".pkl" and child.is_file())
    if not found:
        raise FileNotFoundError(f"{path}: no TAP-Vid pickle (*.pkl) in the folder")
    return found


def read_tapvid(path: str | Path, size: int = TAPVID_SIZE) -> list[Sample]:
    """Every record of a TAP-Vid pickle as a Sample with `tracks` and `visible`.

    Raises:
        UnsafePickleError: the pickle names anything but numpy arrays and containers.
        ReaderError: the file is not a readable pickle, its records do not have the TAP-Vid
            keys, types and shapes, a JPEG frame declares more than MAX_IMAGE_PIXELS pixels,
            or its frames would take more than max_decoded_bytes once resized (one line
            naming the file and the record).
    """
    path = Path(path)
    data = load_data_pickle(path)
    if isinstance(data, dict):
        records = list(data.items())
    elif isinstance(data, list):
        records = [(f"{index:04d}", record) for index, record in enumerate(data)]
    else:
        raise ReaderError(f"{path}: a TAP-Vid pickle holds a dict or a list, not {type(data)}")
    room = max_decoded_bytes(path.stat().st_size)
    samples = []
    for key, record in records:
        samples.append(_sample(path, key, record, size, room))
        room -= samples[-1].video.nbytes
    return samples


def _sample(path: Path, key: str, record: dict, size: int, room: int) -> Sample:
    """One record -> a Sample named `<file name>:<key>`, its frames taking at most `room`
    bytes; errors name `<path>:<key>`."""
    where = f"{path}:{key}"
    if not isinstance(record, dict):
        raise ReaderError(f"{where}: a TAP-Vid record is a dict, not {_kind(record)}")
    missing = {"video", "points", "occluded"} - set(record)
    if missing:
        raise ReaderError(f"{where}: missing TAP-Vid keys {sorted(missing)}")
    video = _frames(where, record["video"], size, room)
    points = _numbers(where, "points", record["points"]).astype(np.float32)
    occluded = _numbers(where, "occluded", record["occluded"]).astype(bool)
    if points.ndim != 3 or points.shape[1:] != (len(video), 2):
        raise ReaderError(f"{where}: points {points.shape} do not match {len(video)} frames")
    if occluded.shape != points.shape[:2]:
        raise ReaderError(f"{where}: occluded {occluded.shape} does not match points")
    if not np.isfinite(points[~occluded]).all():
        raise ReaderError(f"{where}: a visible point's position is NaN or infinite")
    return Sample(name=f"{path.name}:{key}", video=video, tracks=points * size, visible=~occluded)


def _numbers(where: str, key: str, value) -> np.ndarray:
    """A record's array of numbers (booleans, integers or floats; nested lists too) as numpy.

    Raises:
        ReaderError: `value` is not a rectangular array of numbers.
    """
    try:
        array = np.asarray(value) if isinstance(value, (np.ndarray, list, tuple)) else None
    except ValueError:  # ragged nested lists
        array = None
    if array is None or array.dtype.kind not in "biuf":
        raise ReaderError(f"{where}: {key} is not a rectangular array of numbers ({_kind(value)})")
    return array


def _frames(where: str, video, size: int, room: int) -> np.ndarray:
    """uint8 [T, H, W, 3] pixels or a sequence of T JPEG byte strings -> uint8
    [T, size, size, 3], taking at most `room` bytes; frames are decoded and resized one at a
    time.

    Raises:
        ReaderError: `video` is neither, has no frames, would take more than `room` bytes, or
            a frame is not a decodable JPEG of at most MAX_IMAGE_PIXELS pixels.
    """
    if isinstance(video, np.ndarray) and video.dtype == np.uint8 and video.ndim != 1:
        if video.ndim != 4 or video.shape[3] != 3 or 0 in video.shape:
            raise ReaderError(
                f"{where}: video pixels {video.shape} are not [T, H, W, 3] (T, H, W > 0)"
            )
        _check_fits(where, video, size, room)
        return resize_frames(frames_from_pixels(video), len(video), size)
    listed = isinstance(video, (list, tuple)) or (isinstance(video, np.ndarray) and video.ndim == 1)
    if not listed or not len(video) or not all(isinstance(frame, bytes) for frame in video):
        raise ReaderError(
            f"{where}: video is neither uint8 [T, H, W, 3] pixels nor a list of JPEG byte "
            f"strings ({_kind(video)})"
        )
    _check_fits(where, video, size, room)
    images = (decode_jpeg(where, index, data) for index, data in enumerate(video))
    return resize_frames(images, len(video), size)


def _check_fits(where: str, video, size: int, room: int) -> None:
    """Raise ReaderError unless the frames of `video` (a sequence) fit in `room` bytes at size x
    size RGB."""
    check_room(where, f"{len(video)} frames at {size}x{size}", len(video) * size * size * 3, room)


def _kind(value) -> str:
    """What `value` is, for an error message: its type, and an array's dtype and shape or the
    types a list holds."""
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    if isinstance(value, (list, tuple)):
        held = sorted({type(item).__name__ for item in value})
        return f"a {type(value).__name__} of {', '.join(held) or 'nothing'}"
    return f"a {type(value).__name__}"
