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
from fourds.data.video import VideoError, frames_from_pixels, resize_frames

TAPVID_SIZE = 256


def read_tapvid(path: str | Path, size: int = TAPVID_SIZE) -> list[Sample]:
    """Every record of a TAP-Vid pickle as a Sample with `tracks` and `visible`.

    Raises:
        UnsafePickleError: the pickle names anything but numpy arrays and containers.
        ReaderError: the records do not have the TAP-Vid keys and shapes.
    """
    path = Path(path)
    data = load_data_pickle(path)
    if isinstance(data, dict):
        records = list(data.items())
    elif isinstance(data, list):
        records = [(f"{index:04d}", record) for index, record in enumerate(data)]
    else:
        raise ReaderError(f"{path}: a TAP-Vid pickle holds a dict or a list, not {type(data)}")
    return [_sample(f"{path.name}:{name}", record, size) for name, record in records]


def _sample(name: str, record: dict, size: int) -> Sample:
    missing = {"video", "points", "occluded"} - set(record)
    if missing:
        raise ReaderError(f"{name}: missing TAP-Vid keys {sorted(missing)}")
    video = _frames(name, record["video"], size)
    points = np.asarray(record["points"], dtype=np.float32)
    occluded = np.asarray(record["occluded"], dtype=bool)
    if points.ndim != 3 or points.shape[1:] != (len(video), 2):
        raise ReaderError(f"{name}: points {points.shape} do not match {len(video)} frames")
    if occluded.shape != points.shape[:2]:
        raise ReaderError(f"{name}: occluded {occluded.shape} does not match points")
    if not np.isfinite(points[~occluded]).all():
        raise ReaderError(f"{name}: a visible point's position is NaN or infinite")
    return Sample(name=name, video=video, tracks=points * size, visible=~occluded)


def _frames(name: str, video, size: int) -> np.ndarray:
    """uint8 [T, H, W, 3] or a sequence of JPEG byte strings -> uint8 [T, size, size, 3]."""
    if isinstance(video, np.ndarray) and video.dtype == np.uint8 and video.ndim == 4:
        return resize_frames(frames_from_pixels(video), size)
    return resize_frames([_decode_jpeg(name, bytes(data)) for data in video], size)


def _decode_jpeg(name: str, data: bytes) -> av.VideoFrame:
    codec = av.CodecContext.create("mjpeg", "r")
    try:
        frames = codec.decode(av.Packet(data))
    except av.FFmpegError as error:
        raise VideoError(f"{name}: a frame is not a decodable JPEG ({error})") from None
    if len(frames) != 1:
        raise VideoError(f"{name}: a JPEG frame decoded to {len(frames)} images")
    return frames[0]
