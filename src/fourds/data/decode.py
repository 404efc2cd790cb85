"""Decoding real-world video for curation: any container and codec, checked and normalised.

What real videos bring, and what this module does about it:

- headers that lie (missing or wrong frame counts, no duration): frames are counted by
  decoding, never taken from headers;
- variable frame rate: frames are picked by their timestamps, so a clip resampled to
  `fps` has evenly spaced times whatever the source's spacing (the frame shown at each target
  time is the latest one that started at or before it);
- rotation metadata (phones): frames are turned upright as the display matrix says;
- odd sizes and aspect ratios: resized so the shorter side is `size` and centre-cropped
  (crop="center"), or squashed to size x size (crop="stretch");
- broken files: empty, not a video, audio-only, undecodable packets and files truncated
  behind a valid header raise `VideoError` with the reason; curation records it.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from fourds.config.schema import CROPS
from fourds.data.video import VideoError

# A file whose frames stop before this fraction of the duration its container declares is
# treated as truncated (decoders stop silently at a cut-off WebM or Matroska cluster).
COMPLETE_FRACTION = 0.9


@dataclasses.dataclass(frozen=True)
class DecodedVideo:
    """Frames of one source, upright, at the target size and frame rate.

    frames: [T, size, size, 3] uint8 RGB.
    source_index: [T] int64, the position in decode order of the source frame each came from
        (repeated when resampling up, skipping when resampling down); indexes per-frame
        ground truth recorded alongside the source.
    fps: frame rate of `frames` (the target, or the source's average rate when not resampled).
    source_frames: how many frames the source decoded to.
    source_size: (width, height) of the source's frames as displayed (upright).
    """

    frames: np.ndarray
    source_index: np.ndarray
    fps: float
    source_frames: int
    source_size: tuple[int, int]


def displayed_size(frame: av.VideoFrame) -> tuple[int, int]:
    """(width, height) of a decoded frame once turned upright by its rotation metadata."""
    if round(frame.rotation / 90) % 2:
        return frame.height, frame.width
    return frame.width, frame.height


def _upright(
    frame: av.VideoFrame, size: int, crop: str, reformatter: VideoReformatter
) -> np.ndarray:
    """One decoded frame -> [size, size, 3] uint8, rotated upright, resized and cropped.

    `reformatter` keeps FFmpeg's scaler between frames (a new one per frame costs ~25x more).
    """
    quarter_turns = round(frame.rotation / 90) % 4
    width, height = displayed_size(frame)
    if crop == "stretch":
        out_width = out_height = size
    else:
        scale = size / min(width, height)
        out_width, out_height = max(size, round(width * scale)), max(size, round(height * scale))
    if quarter_turns % 2:
        out_width, out_height = out_height, out_width
    image = reformatter.reformat(
        frame, width=out_width, height=out_height, format="rgb24", interpolation="AREA"
    ).to_ndarray()
    image = np.rot90(image, k=quarter_turns)
    top = (image.shape[0] - size) // 2
    left = (image.shape[1] - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size])


def decode_video(
    path: str | Path,
    size: int,
    fps: float = 0.0,
    crop: str = "center",
    wanted: Callable[[int], bool] | None = None,
) -> DecodedVideo:
    """Decode the first video stream of `path` into upright size x size frames.

    Args:
        path: any file PyAV (FFmpeg) can demux and decode.
        size: output height and width.
        fps: target frame rate; 0 keeps every decoded frame.
        crop: "center" (shorter side to `size`, centre crop) or "stretch".
        wanted: which output frames (by index) the caller will use; the others are decoded
            (codecs need them) but not converted, and stay black. None: all of them.

    Raises:
        VideoError: the file is empty, not a video container, has no video stream, has
            packets that fail to decode, decodes to no frames, or stops well before the
            duration its container declares (truncated).
    """
    path = Path(path)
    if crop not in CROPS:
        raise ValueError(f"crop={crop!r} is not one of {list(CROPS)}")
    if not path.is_file():
        raise VideoError(f"{path}: not found")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoError(f"{path}: not a readable video container ({error})") from None
    with container:
        if not container.streams.video:
            kinds = sorted({stream.type for stream in container.streams}) or ["no"]
            raise VideoError(f"{path}: no video stream (only {', '.join(kinds)} streams)")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 0.0)
        declared = container.duration / av.time_base if container.duration else 0.0
        frame_time = 1.0 / rate if rate else 0.0
        decoded = 0
        with ThreadPoolExecutor(max_workers=1) as pool:
            sampler = _Resampler(size, crop, fps, pool, wanted)
            try:
                for frame in container.decode(stream):
                    if decoded == 0:
                        source_size = displayed_size(frame)
                    time = frame.time if frame.time is not None else decoded / (rate or 1.0)
                    sampler.add(frame, time, decoded)
                    decoded += 1
                if decoded == 0:
                    raise VideoError(f"{path}: decodes to zero frames")
                frames, source_index = sampler.finish(frame_time)
            except av.FFmpegError as error:
                message = f"{path}: undecodable after {decoded} frames ({error})"
                raise VideoError(message) from None
    covered = sampler.last_time - sampler.first_time + frame_time
    if declared > 0 and covered < COMPLETE_FRACTION * declared:
        raise VideoError(
            f"{path}: truncated: {decoded} frames cover {covered:.2f} s of the "
            f"{declared:.2f} s the container declares"
        )
    return DecodedVideo(frames, source_index, fps or rate, decoded, source_size)


class _Resampler:
    """Keeps the frames shown at the target times (all frames when fps is 0), upright.

    Frames arrive in presentation order. Each kept frame is converted to pixels once, in a
    worker thread, while the decoder goes on (FFmpeg's scaler runs without the GIL); at most
    MAX_IN_FLIGHT decoded frames wait for conversion, which bounds the memory they hold.
    """

    MAX_IN_FLIGHT = 32

    def __init__(
        self,
        size: int,
        crop: str,
        fps: float,
        pool: ThreadPoolExecutor,
        wanted: Callable[[int], bool] | None,
    ):
        self.size, self.crop, self.fps, self.pool = size, crop, fps, pool
        self.wanted = wanted or (lambda index: True)
        self.reformatter = VideoReformatter()  # used by the pool's single worker only
        self.kept: list[Future | None] = []  # None: an output frame nobody wants
        self.index: list[int] = []
        self.first_time = self.last_time = math.nan
        self._in_flight: collections.deque[Future] = collections.deque()
        self._pending: tuple[av.VideoFrame, int] | None = None
        self._pixels: Future | None = None
        self._target = 0  # index k of the next target time first_time + k / fps

    def add(self, frame: av.VideoFrame, time: float, position: int) -> None:
        if math.isnan(self.first_time):
            self.first_time = time
        time = max(time, self.last_time) if not math.isnan(self.last_time) else time
        if not self.fps:
            self.kept.append(self._convert(frame) if self.wanted(len(self.kept)) else None)
            self.index.append(position)
        else:
            self._emit_until(time)
            self._pending, self._pixels = (frame, position), None
        self.last_time = time

    def finish(self, frame_time: float) -> tuple[np.ndarray, np.ndarray]:
        """[T, size, size, 3] frames and [T] source positions."""
        if self.fps:
            self._emit_until(self.last_time + max(frame_time, 1e-9))
        blank = np.zeros((self.size, self.size, 3), np.uint8)
        frames = np.stack([blank if job is None else job.result() for job in self.kept])
        return frames, np.asarray(self.index, dtype=np.int64)

    def _convert(self, frame: av.VideoFrame) -> Future:
        future = self.pool.submit(_upright, frame, self.size, self.crop, self.reformatter)
        self._in_flight.append(future)
        while len(self._in_flight) > self.MAX_IN_FLIGHT:
            self._in_flight.popleft().result()
        return future

    def _emit_until(self, time: float) -> None:
        """Show the pending frame at every target time before `time`."""
        while self._pending is not None and self.first_time + self._target / self.fps < time:
            frame, position = self._pending
            if not self.wanted(len(self.kept)):
                self.kept.append(None)
            else:
                if self._pixels is None:
                    self._pixels = self._convert(frame)
                self.kept.append(self._pixels)
            self.index.append(position)
            self._target += 1
