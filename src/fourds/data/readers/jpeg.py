"""One JPEG image decoded with FFmpeg's MJPEG decoder, refused above MAX_IMAGE_PIXELS before its
pixels are allocated (the frames TAP-Vid-Kinetics pickles and Waymo Open's camera_image parquet
files store as JPEG bytes)."""

from __future__ import annotations

import av

from fourds.data.readers import MAX_IMAGE_PIXELS, ReaderError


def decode_jpeg(where: str, index: int, data: bytes) -> av.VideoFrame:
    """Frame `index` of `where`, JPEG bytes -> its image (any size and pixel format).

    Raises:
        ReaderError: the bytes are not one decodable JPEG image of at most MAX_IMAGE_PIXELS
            pixels (one line naming `where` and the frame).
    """
    codec = av.CodecContext.create("mjpeg", "r")
    codec.options = {"max_pixels": str(MAX_IMAGE_PIXELS)}
    try:
        frames = codec.decode(av.Packet(data))
    except av.FFmpegError as error:
        raise ReaderError(
            f"{where}: frame {index} is not a decodable JPEG of at most {MAX_IMAGE_PIXELS} "
            f"pixels ({error})"
        ) from None
    if len(frames) != 1:
        raise ReaderError(f"{where}: frame {index}'s JPEG decoded to {len(frames)} images")
    return frames[0]
