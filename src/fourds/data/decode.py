"""Decoding real-world video for curation: any container and codec, checked and normalised.

What real videos bring, and what this module does about it:

- headers that lie (missing or wrong frame counts, no duration): frames are counted by
  decoding, never taken from headers;
- variable frame rate: frames are picked by their timestamps, so a clip resampled to
  `fps` has evenly spaced times whatever the source's spacing (the frame shown at each target
  time is the latest one that started at or before it);
- display geometry: frames are shown as a player shows them: each stored pixel widened by the
  sample aspect ratio (anamorphic 1440x1080 at 4:3 is shown 1920x1080), then turned and
  mirrored as the display matrix says (phones' rotation metadata, mirrored selfie video);
- odd sizes and aspect ratios: resized so the shorter side is `size` and centre-cropped
  (crop="center"), or squashed to size x size (crop="stretch");
- broken files: empty, not a video, audio-only, undecodable packets and files truncated
  behind a valid header raise `VideoError` with the reason; curation records it;
- damage the decoder conceals (FFmpeg patches broken GIF and MPEG-4 frames from their
  neighbours and goes on): decoding runs with FFmpeg's error detection on (`err_detect`), and
  any error FFmpeg reports while opening or decoding, or a frame it flags corrupt, rejects the
  file;
- hostile sizes (a 226 KB GIF can declare a 16000x16000 screen): frames above
  `max_frame_pixels` are refused before any is decoded (and by FFmpeg's own `max_pixels`),
  decoded frames waiting for conversion hold at most `max_queued_bytes`, and a source whose
  output frames would take more than `max_decoded_bytes` (a long video of tiny frames, or a
  timestamp gap that resampling fills with hours of repeated frames) is refused at the first
  frame past it, so memory stays bounded whatever the frame count or the timestamps;
- audio that runs longer than the video: truncation is judged on the video stream's duration,
  never the container's;
- the same stream in another container: `content_digest` hashes the decoded frames, so
  curation can find duplicates whose bytes differ.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import math
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import numpy as np
from av.sidedata.sidedata import SideDataContainer
from av.video.reformatter import VideoReformatter

from fourds.config.schema import CROPS, MAX_DECODED_MIB, MAX_FRAME_PIXELS, MAX_QUEUED_MIB
from fourds.data.video import VideoError

# A file whose frames stop before this fraction of the duration its container declares is
# treated as truncated (decoders stop silently at a cut-off WebM or Matroska cluster).
COMPLETE_FRACTION = 0.9
# FFmpeg's error detection while decoding: checksums, bitstream and buffer checks, and "explode":
# stop at the first error instead of concealing it.
ERROR_DETECTION = "crccheck+bitstream+buffer+explode"


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
    content_digest: BLAKE2b-256 of every decoded source frame's pixels in decode order (before
        any resampling or resizing): the same stream in any container has the same value.
    """

    frames: np.ndarray
    source_index: np.ndarray
    fps: float
    source_frames: int
    source_size: tuple[int, int]
    content_digest: str


@dataclasses.dataclass(frozen=True)
class Orientation:
    """How a player turns a stored frame to show it: one of the eight rotations by quarter turns,
    mirrored or not, as a transpose (rows become columns) and then the rows and/or the columns
    reversed."""

    transpose: bool = False
    flip_rows: bool = False
    flip_columns: bool = False

    def apply(self, image: np.ndarray) -> np.ndarray:
        """[H, W, C] as stored -> as shown: [W, H, C] when transposed, else [H, W, C]."""
        if self.transpose:
            image = image.transpose(1, 0, 2)
        if self.flip_rows:
            image = image[::-1]
        if self.flip_columns:
            image = image[:, ::-1]
        return image


def orientation(frame: av.VideoFrame) -> Orientation:
    """The frame's display matrix, read whole: FFmpeg's ((a, b), (c, d)) shows the pixel at
    column x, row y at (a x + c y, b x + d y), snapped to the nearest of the eight orientations.
    No matrix, or a degenerate one (which players ignore too): upright."""
    # a container of its own, not `frame.side_data`: that one is cached on the frame and refers
    # back to it, a cycle that keeps every decoded frame alive until the cyclic garbage collector
    # runs (60 frames of 8K, 2.1 GB, held while decoding a 104 KB file)
    side_data = SideDataContainer(frame).get("DISPLAYMATRIX")
    if side_data is None:
        return Orientation()
    a, b, _, c, d = np.frombuffer(bytes(side_data), np.int32)[:5].astype(np.int64)
    if abs(b) + abs(c) > abs(a) + abs(d):
        return Orientation(transpose=True, flip_rows=b < 0, flip_columns=c < 0)
    return Orientation(flip_rows=d < 0, flip_columns=a < 0)


def sample_aspect(stream: av.video.stream.VideoStream) -> Fraction:
    """A stored pixel's displayed width over its height: the sample aspect ratio the container
    or the bitstream records (the container's first, as players take it); 1 when none."""
    aspect = stream.sample_aspect_ratio
    return aspect if aspect is not None and aspect > 0 else Fraction(1)


def displayed_size(frame: av.VideoFrame, aspect: Fraction) -> tuple[int, int]:
    """(width, height) of a decoded frame as shown: its width times the sample aspect ratio
    `aspect`, then turned by its display matrix."""
    width = max(1, round(frame.width * aspect))
    if orientation(frame).transpose:
        return frame.height, width
    return width, frame.height


def _upright(
    frame: av.VideoFrame, size: int, crop: str, aspect: Fraction, reformatter: VideoReformatter
) -> np.ndarray:
    """One decoded frame -> [size, size, 3] uint8 as shown (pixels widened by the sample aspect
    ratio `aspect`, then turned and mirrored), resized and cropped.

    `reformatter` keeps FFmpeg's scaler between frames (a new one per frame costs ~25x more).
    """
    width, height = frame.width * float(aspect), frame.height  # turning changes no crop
    if crop == "stretch":
        out_width = out_height = size
    else:
        scale = size / min(width, height)
        out_width, out_height = max(size, round(width * scale)), max(size, round(height * scale))
    image = reformatter.reformat(
        frame, width=out_width, height=out_height, format="rgb24", interpolation="AREA"
    ).to_ndarray()
    image = orientation(frame).apply(image)
    top = (image.shape[0] - size) // 2
    left = (image.shape[1] - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size])


def decode_video(
    path: str | Path,
    size: int,
    fps: float = 0.0,
    crop: str = "center",
    wanted: Callable[[int], bool] | None = None,
    max_frame_pixels: int = MAX_FRAME_PIXELS,
    max_queued_bytes: int = MAX_QUEUED_MIB << 20,
    max_decoded_bytes: int = MAX_DECODED_MIB << 20,
) -> DecodedVideo:
    """Decode the first video stream of `path` into upright size x size frames.

    Args:
        path: any file PyAV (FFmpeg) can demux and decode.
        size: output height and width.
        fps: target frame rate; 0 keeps every decoded frame.
        crop: "center" (shorter side to `size`, centre crop) or "stretch".
        wanted: which output frames (by index) the caller will use; the others are decoded
            (codecs need them) but not converted, and stay black. None: all of them.
        max_frame_pixels: frames with more pixels are refused (curate.max_frame_pixels).
        max_queued_bytes: memory decoded frames waiting for conversion may hold.
        max_decoded_bytes: memory the output frames may take (T x size x size x 3 bytes);
            decoding stops at the first frame past it (curate.max_decoded_mib).

    Raises:
        VideoError: the file is empty, not a video container, has no video stream, has frames
            larger than max_frame_pixels, gives more output frames than max_decoded_bytes
            holds, has packets that fail to decode or damage FFmpeg reports (even where it
            would conceal it), decodes to no frames, or stops well before the duration its
            video stream declares (truncated).
    """
    path = Path(path)
    if crop not in CROPS:
        raise ValueError(f"crop={crop!r} is not one of {list(CROPS)}")
    with _ffmpeg_errors(path), _open_container(path) as container:
        stream = _video_stream(path, container, max_frame_pixels)
        rate = float(stream.average_rate or stream.guessed_rate or 0.0)
        aspect = sample_aspect(stream)
        declared = video_duration(container, stream)
        frame_time = 1.0 / rate if rate else 0.0
        content = hashlib.blake2b(digest_size=32)
        decoded = 0
        max_frames = max_decoded_bytes // (size * size * 3)
        with ThreadPoolExecutor(max_workers=1) as pool:
            sampler = _Resampler(
                size, crop, aspect, fps, pool, wanted, max_queued_bytes, max_frames
            )
            try:
                for frame in container.decode(stream):
                    _check_pixels(path, frame.width, frame.height, max_frame_pixels)
                    if frame.is_corrupt:
                        raise VideoError(f"{path}: frame {decoded} is flagged corrupt")
                    if decoded == 0:
                        source_size = displayed_size(frame, aspect)
                    for plane in frame_planes(frame):
                        content.update(plane)
                    time = frame.time if frame.time is not None else decoded / (rate or 1.0)
                    sampler.add(frame, time, decoded)
                    decoded += 1
                if decoded == 0:
                    raise VideoError(f"{path}: decodes to zero frames")
                frames, source_index = sampler.finish(frame_time)
            except (av.FFmpegError, ValueError) as error:
                message = f"{path}: undecodable after {decoded} frames ({error})"
                raise VideoError(message) from None
            except _FrameLimit:
                at = f"{size}x{size}" + (f" and {fps:g} fps" if fps else "")
                raise VideoError(
                    f"{path}: more than {max_frames} frames at {at} by source frame {decoded}: "
                    f"over curate.max_decoded_mib={max_decoded_bytes >> 20} MiB decoded "
                    "(raise it to curate such sources)"
                ) from None
    covered = sampler.last_time - sampler.first_time + frame_time
    if declared > 0 and covered < COMPLETE_FRACTION * declared:
        raise VideoError(
            f"{path}: truncated: {decoded} frames cover {covered:.2f} s of the "
            f"{declared:.2f} s its video stream declares"
        )
    digest = content.hexdigest()
    return DecodedVideo(frames, source_index, fps or rate, decoded, source_size, digest)


def _open_container(path: Path) -> av.container.InputContainer:
    """`path` opened by PyAV (run inside `_ffmpeg_errors`).

    Raises:
        VideoError: the file is missing, empty, or not a container PyAV can read.
    """
    if not path.is_file():
        raise VideoError(f"{path}: not found")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoError(f"{path}: not a readable video container ({error})") from None


def _video_stream(path: Path, container, max_frame_pixels: int) -> av.video.stream.VideoStream:
    """The container's first video stream, checked and set up for decoding: on the calling
    thread only, with FFmpeg's error detection on and its own pixel limit.

    FFmpeg's own decoding threads would deadlock with the log capture (`_ffmpeg_errors`): a
    worker thread that logs waits for the GIL in PyAV's log callback while the main thread,
    holding the GIL, waits for that worker inside avcodec_free_context (seen in the fuzz test;
    PyAV issue 751). Pixel conversion still overlaps decoding (`_Resampler`).

    Raises:
        VideoError: no video stream, no decoder for it, or frames above max_frame_pixels.
    """
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams}) or ["no"]
        raise VideoError(f"{path}: no video stream (only {', '.join(kinds)} streams)")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise VideoError(f"{path}: FFmpeg has no decoder for its video stream")
    codec = stream.codec_context
    _check_pixels(path, codec.width, codec.height, max_frame_pixels)
    codec.thread_count = 1
    codec.options = {"err_detect": ERROR_DETECTION, "max_pixels": str(max_frame_pixels)}
    return stream


def _check_pixels(path: Path, width: int, height: int, limit: int) -> None:
    if width * height > limit:
        raise VideoError(
            f"{path}: frames of {width}x{height} = {width * height} pixels exceed "
            f"curate.max_frame_pixels={limit} (raise it to decode such files)"
        )


def video_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream):
    """Seconds the video stream declares: its own duration, or the Matroska DURATION tag; the
    container's duration only when the video is its one stream (a container's duration spans
    every stream, and audio often runs longer). 0 when unknown."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION", "")
    with contextlib.suppress(ValueError):
        hours, minutes, seconds = tag.split(":")
        return 3600 * int(hours) + 60 * int(minutes) + float(seconds)
    if len(container.streams) == 1 and container.duration:
        return container.duration / av.time_base
    return 0.0


def frame_planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """A decoded frame's pixel rows in its own format, one uint8 [rows, bytes] array per
    plane, without the line padding (whose bytes are not part of the picture)."""
    planes = []
    for index, plane in enumerate(frame.planes):
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[: plane.height]
        sample_bytes = sum(-(-c.bits // 8) for c in frame.format.components if c.plane == index)
        width = min(plane.line_size, plane.width * sample_bytes) if sample_bytes else None
        planes.append(np.ascontiguousarray(rows[:, :width]))
    return planes


@contextlib.contextmanager
def _ffmpeg_errors(path: Path):
    """Raise VideoError if FFmpeg logs an error (from any of its threads) inside the block:
    damage its decoders would conceal, and packets its demuxers skip."""
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=False) as logs:
            yield
    finally:
        av.logging.set_level(previous)
    errors = [log for log in logs if log[0] <= av.logging.ERROR]
    if errors:
        level, name, message = errors[0]
        raise VideoError(
            f"{path}: damaged: FFmpeg reports {message.strip()!r} ({name}; {len(errors)} "
            "error(s) it would conceal)"
        )


class _FrameLimit(Exception):
    """A source would give more output frames than a limit allows (the limit is the argument)."""


class _Resampler:
    """Keeps the frames shown at the target times (all frames when fps is 0), as displayed.

    Frames arrive in presentation order. Each kept frame is converted to pixels once, in a
    worker thread, while the decoder goes on (FFmpeg's scaler runs without the GIL); at most
    MAX_IN_FLIGHT decoded frames, and at most `max_queued_bytes` of them, wait for conversion.
    At most `max_frames` output frames are kept: one more raises _FrameLimit.
    """

    MAX_IN_FLIGHT = 32

    def __init__(
        self,
        size: int,
        crop: str,
        aspect: Fraction,
        fps: float,
        pool: ThreadPoolExecutor,
        wanted: Callable[[int], bool] | None,
        max_queued_bytes: int,
        max_frames: int,
    ):
        self.size, self.crop, self.aspect, self.fps, self.pool = size, crop, aspect, fps, pool
        self.max_queued_bytes, self.max_frames = max_queued_bytes, max_frames
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
            self._pixels = None
            self._show(frame, position)
        else:
            self._emit_until(time)
            self._pending, self._pixels = (frame, position), None
        self.last_time = time

    def finish(self, frame_time: float) -> tuple[np.ndarray, np.ndarray]:
        """[T, size, size, 3] frames and [T] source positions."""
        if self.fps:
            self._emit_until(self.last_time + max(frame_time, 1e-9))
        frames = np.zeros((len(self.kept), self.size, self.size, 3), np.uint8)
        for index, job in enumerate(self.kept):
            if job is not None:
                frames[index] = job.result()
            self.kept[index] = None  # each conversion is freed once copied: frames held once
        return frames, np.asarray(self.index, dtype=np.int64)

    def _convert(self, frame: av.VideoFrame) -> Future:
        frame_bytes = sum(plane.buffer_size for plane in frame.planes)
        limit = min(self.MAX_IN_FLIGHT, max(1, self.max_queued_bytes // max(frame_bytes, 1)))
        while len(self._in_flight) >= limit:
            self._in_flight.popleft().result()
        future = self.pool.submit(
            _upright, frame, self.size, self.crop, self.aspect, self.reformatter
        )
        self._in_flight.append(future)
        return future

    def _emit_until(self, time: float) -> None:
        """Show the pending frame at every target time before `time`."""
        while self._pending is not None and self.first_time + self._target / self.fps < time:
            self._show(*self._pending)
            self._target += 1

    def _show(self, frame: av.VideoFrame, position: int) -> None:
        """Make `frame` (source frame `position`) the next output frame: converted once
        however often it is shown in a row, and only if wanted.

        Raises:
            _FrameLimit: there are max_frames output frames already (checked before anything
                is added, so a long video or a timestamp gap stops at the limit).
        """
        if len(self.kept) == self.max_frames:
            raise _FrameLimit(self.max_frames)
        if not self.wanted(len(self.kept)):
            self.kept.append(None)
        else:
            if self._pixels is None:
                self._pixels = self._convert(frame)
            self.kept.append(self._pixels)
        self.index.append(position)
