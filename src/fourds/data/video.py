"""Video file I/O with PyAV: the only place that touches containers and codecs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from fourds.atomic import atomic_path
from fourds.errors import VideoError


def write_video(path: str | Path, frames: np.ndarray, fps: int) -> None:
    """Encode frames losslessly as H.264 in MP4 (libx264rgb, qp 0, RGB 4:4:4).

    Lossless, so decoding gives back exactly `frames`: x264's bitstream is not reproducible
    from run to run here (observed: the same input, different mdat sizes), but its decoded
    frames are, which is what `fourds synth`'s reproducibility rests on.

    Args:
        path: destination; written under a temporary name, then renamed.
        frames: [T, H, W, 3] uint8 RGB.
        fps: frame rate stored in the container.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    with atomic_path(path) as partial, av.open(str(partial), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264rgb", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "rgb24"
        stream.options = {"qp": "0", "preset": "medium"}
        container.metadata["comment"] = "rendered by fourds synth"
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())


def read_video(path: str | Path, size: int | None = None) -> np.ndarray:
    """Decode every frame of a video.

    Args:
        path: any container/codec PyAV (FFmpeg) can decode.
        size: if given, frames are resized to size x size (bilinear, by FFmpeg's scaler).

    Returns:
        [T, H, W, 3] uint8 RGB frames in decode order.

    Raises:
        VideoError: the file is missing, not a video, or undecodable.
    """
    path = Path(path)
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if size is not None:
                    frame = frame.reformat(width=size, height=size, interpolation="BILINEAR")
                frames.append(frame.to_ndarray(format="rgb24"))
    except (av.FFmpegError, OSError) as error:
        raise VideoError(f"{path}: cannot decode ({error})") from None
    if not frames:
        raise VideoError(f"{path}: decodes to zero frames")
    return np.stack(frames)


def frames_from_pixels(video: np.ndarray) -> Iterator[av.VideoFrame]:
    """uint8 [T, H, W, 3] RGB -> PyAV frames (for FFmpeg's scaler), one at a time."""
    for image in video:
        yield av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")


def resize_frames(frames: Iterable[av.VideoFrame], count: int, size: int) -> np.ndarray:
    """`count` frames of any size and format -> uint8 [count, size, size, 3] RGB, bilinear
    (FFmpeg's scaler, kept across frames: a new scaler per frame costs ~25x more).

    Each frame is resized as it comes, into an array allocated once: memory holds the output
    and one input frame, however large the frames or many the references to one of them.
    """
    scaler = VideoReformatter()
    resized = np.empty((count, size, size, 3), np.uint8)
    for index, frame in zip(range(count), frames, strict=True):
        resized[index] = scaler.reformat(
            frame, width=size, height=size, format="rgb24", interpolation="BILINEAR"
        ).to_ndarray()
    return resized
