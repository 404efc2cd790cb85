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
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from fourds.data.readers import ReaderError
from fourds.data.readers.safe_pickle import load_data_pickle
from fourds.data.sample import Sample
from fourds.data.video import frames_from_pixels, resize_frames

TAPVID_SIZE = 256


def read_tapvid(path: str | Path, size: int = TAPVID_SIZE) -> list[Sample]:
    """Every record of a TAP-Vid pickle as a Sample with `tracks` and `visible`.

    Raises:
        UnsafePickleError: the pickle names anything but numpy arrays and containers.
        ReaderError: the file is not a readable pickle, or its records do not have the TAP-Vid
            keys, types and shapes (one line naming the file and the record).
    """
    path = Path(path)
    data = load_data_pickle(path)
    if isinstance(data, dict):
        records = list(data.items())
    elif isinstance(data, list):
        records = [(f"{index:04d}", record) for index, record in enumerate(data)]
    else:
        raise ReaderError(f"{path}: a TAP-Vid pickle holds a dict or a list, not {type(data)}")
    return [_sample(path, key, record, size) for key, record in records]


def _sample(path: Path, key: str, record: dict, size: int) -> Sample:
    """One record -> a Sample named `<file name>:<key>`; errors name `<path>:<key>`."""
    where = f"{path}:{key}"
    if not isinstance(record, dict):
        raise ReaderError(f"{where}: a TAP-Vid record is a dict, not {_kind(record)}")
    missing = {"video", "points", "occluded"} - set(record)
    if missing:
        raise ReaderError(f"{where}: missing TAP-Vid keys {sorted(missing)}")
    video = _frames(where, record["video"], size)
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


def _frames(where: str, video, size: int) -> np.ndarray:
    """uint8 [T, H, W, 3] pixels or a sequence of T JPEG byte strings -> uint8
    [T, size, size, 3].

    Raises:
        ReaderError: `video` is neither, has no frames, or a frame is not a decodable JPEG.
    """
    if isinstance(video, np.ndarray) and video.dtype == np.uint8 and video.ndim != 1:
        if video.ndim != 4 or video.shape[3] != 3 or 0 in video.shape:
            raise ReaderError(
                f"{where}: video pixels {video.shape} are not [T, H, W, 3] (T, H, W > 0)"
            )
        return resize_frames(frames_from_pixels(video), size)
    listed = isinstance(video, (list, tuple)) or (isinstance(video, np.ndarray) and video.ndim == 1)
    if not listed or not len(video) or not all(isinstance(frame, bytes) for frame in video):
        raise ReaderError(
            f"{where}: video is neither uint8 [T, H, W, 3] pixels nor a list of JPEG byte "
            f"strings ({_kind(video)})"
        )
    return resize_frames(
        [_decode_jpeg(where, index, data) for index, data in enumerate(video)], size
    )


def _decode_jpeg(where: str, index: int, data: bytes) -> av.VideoFrame:
    """Frame `index` of a record, JPEG bytes -> its image.

    Raises:
        ReaderError: the bytes are not one decodable JPEG image.
    """
    codec = av.CodecContext.create("mjpeg", "r")
    try:
        frames = codec.decode(av.Packet(data))
    except av.FFmpegError as error:
        raise ReaderError(f"{where}: frame {index} is not a decodable JPEG ({error})") from None
    if len(frames) != 1:
        raise ReaderError(f"{where}: frame {index}'s JPEG decoded to {len(frames)} images")
    return frames[0]


def _kind(value) -> str:
    """What `value` is, for an error message: its type, and an array's dtype and shape or the
    types a list holds."""
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    if isinstance(value, (list, tuple)):
        held = sorted({type(item).__name__ for item in value})
        return f"a {type(value).__name__} of {', '.join(held) or 'nothing'}"
    return f"a {type(value).__name__}"
