"""Readers of public benchmark formats, each producing `fourds.data.sample.Sample`s.

A file that is not what its format says raises `ReaderError` naming the file and the problem.

What a reader decodes is bounded by what it reads, not by what the files claim (a pickle can
reference one JPEG any number of times, a 38 KB PNG can hold 4000x4000 zeros, a camera file can
name one frame thousands of times): the arrays of one file (a TAP-Vid pickle, a RealEstate10K
clip, a ScanNet scene) may take at most `max_decoded_bytes` of the bytes read, checked before
they are decoded, and each image decoded at most MAX_IMAGE_PIXELS pixels.
"""

from __future__ import annotations

from fourds.config.schema import MAX_FRAME_PIXELS
from fourds.errors import ReaderError

# Decoded bytes allowed: at least MIN_DECODED_BYTES, and EXPANSION per byte read (pixel arrays
# decode to about as many bytes as they take, JPEG frames and depth PNGs to several times more).
MIN_DECODED_BYTES = 1 << 30
EXPANSION = 64
MAX_IMAGE_PIXELS = MAX_FRAME_PIXELS  # per image, as curation's limit per frame (8K fits)


def max_decoded_bytes(read_bytes: int) -> int:
    """Bytes the arrays decoded from `read_bytes` bytes of files may take."""
    return max(MIN_DECODED_BYTES, EXPANSION * read_bytes)


def check_room(where: str, what: str, need: int, room: int) -> None:
    """Raise ReaderError naming `where` unless `what`, `need` bytes decoded, fits in `room`."""
    if need > room:
        raise ReaderError(
            f"{where}: {what} would take {need >> 20} MiB decoded, over the {room >> 20} MiB "
            "left of what its files may decode to (fourds.data.readers.max_decoded_bytes: a "
            "small file cannot expand without bound)"
        )
