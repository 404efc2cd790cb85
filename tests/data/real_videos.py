"""Small real-world-style video files the tests make themselves, including broken ones.

Every writer takes frames uint8 [T, H, W, 3] and writes with PyAV, so the containers and
codecs are the real ones: mp4/H.264, webm/VP9, avi/MPEG-4 Part 2, gif.
"""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

MILLISECOND = Fraction(1, 1000)
FORMATS = {  # suffix: (container format, codec, pixel format)
    ".mp4": ("mp4", "libx264", "yuv420p"),
    ".webm": ("webm", "libvpx-vp9", "yuv420p"),
    ".avi": ("avi", "mpeg4", "yuv420p"),
    ".gif": ("gif", "gif", "rgb8"),
}


def blocks(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Frames of large flat colour blocks (8x8 px) that survive lossy codecs, changing per frame."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 256, (frames, -(-height // 8), -(-width // 8), 3), dtype=np.uint8)
    return np.ascontiguousarray(grid.repeat(8, axis=1).repeat(8, axis=2)[:, :height, :width])


def write(
    path: Path,
    frames: np.ndarray,
    fps: int = 10,
    times: list[float] | None = None,
    aspect: Fraction | None = None,
) -> Path:
    """Encode `frames` in the container and codec of the path's suffix.

    times: presentation time of each frame in seconds (variable frame rate); default k / fps.
    aspect: the sample aspect ratio to record (a stored pixel's displayed width / height: 4:3
        for anamorphic 1440x1080 shown as 1920x1080); default none (square pixels).
    """
    container_format, codec, pixel_format = FORMATS[path.suffix]
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pixel_format
        if aspect is not None:
            stream.codec_context.sample_aspect_ratio = aspect
        if times is not None:
            stream.codec_context.time_base = stream.time_base = MILLISECOND
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = round(times[index] * 1000), MILLISECOND
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


CLOCKWISE = ((0, 1), (-1, 0))  # turn 90 degrees clockwise to show, as phones record portrait


def orient_mp4(path: Path, out: Path, matrix: tuple = CLOCKWISE) -> Path:
    """Copy an MP4 with its track's display matrix (tkhd) set to `matrix`, ((a, b), (c, d)) in
    FFmpeg's layout: the stored pixel at column x, row y is shown at (a x + c y, b x + d y).
    The default turns it 90 degrees clockwise ([0 1; -1 0]); ((-1, 0), (0, 1)) mirrors it
    left to right."""
    (a, b), (c, d) = matrix
    data = bytearray(path.read_bytes())
    box = data.find(b"tkhd")
    assert data[box + 4] == 0, "a version-0 tkhd box"
    start = box + 4 + 40  # after version/flags, times, track id, duration, layer, volume
    data[start : start + 36] = struct.pack(
        ">9i", a << 16, b << 16, 0, c << 16, d << 16, 0, 0, 0, 1 << 30
    )
    out.write_bytes(bytes(data))
    return out


def truncate(path: Path, out: Path, keep: float = 0.5) -> Path:
    """The first `keep` fraction of a file's bytes (a download cut short)."""
    data = path.read_bytes()
    out.write_bytes(data[: int(len(data) * keep)])
    return out


def corrupt_payload(path: Path, out: Path) -> Path:
    """Overwrite most of an MP4's media data with noise; the container still opens."""
    data = bytearray(path.read_bytes())
    box = data.find(b"mdat")
    size = int.from_bytes(data[box - 4 : box], "big")  # the box header: size, then type
    start, stop = box + 200, box - 4 + size - 200  # keep the first packet's start and the end
    noise = np.random.default_rng(1).integers(0, 256, stop - start, dtype=np.uint8)
    data[start:stop] = noise.tobytes()
    out.write_bytes(bytes(data))
    return out


def audio_only(path: Path) -> Path:
    """An M4A file with one AAC audio stream and no video."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        for index in range(10):
            samples = np.zeros((1, 1024), dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, index * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def damage(path: Path, out: Path, at: float, count: int = 64, seed: int = 0) -> Path:
    """Overwrite `count` bytes with noise from the `at` fraction of a file's length onwards
    (the damage a bad disk or a broken transfer leaves inside a frame's data)."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    noise = np.random.default_rng(seed).integers(0, 256, count, dtype=np.uint8)
    data[start : start + count] = noise.tobytes()
    out.write_bytes(bytes(data))
    return out


def with_long_audio(path: Path, frames: np.ndarray, fps: int, audio_seconds: float) -> Path:
    """An MP4 of `frames` (H.264) with an AAC track that runs `audio_seconds`, longer than the
    video: the container's duration is the audio's."""
    rate = 16000
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.height, video.width = frames.shape[1:3]
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        for array in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(video.encode())
        for index in range(int(audio_seconds * rate) // 1024):
            samples = np.zeros((1, 1024), dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, index * 1024
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return path


def remux(path: Path, out: Path, container_format: str) -> Path:
    """The video stream of `path` copied packet for packet into another container."""
    with av.open(str(path)) as source, av.open(str(out), "w", format=container_format) as target:
        stream = target.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            target.mux(packet)
    return out


def gif_screen(path: Path, out: Path, width: int, height: int) -> Path:
    """A GIF whose logical screen descriptor declares width x height (the frames stay small)."""
    data = bytearray(path.read_bytes())
    assert data[:6] in (b"GIF87a", b"GIF89a")
    data[6:10] = struct.pack("<HH", width, height)
    out.write_bytes(bytes(data))
    return out
