"""Readers of public benchmark formats, each producing `fourds.data.sample.Sample`s: one module
per format, named by its fourds.config.formats entry, with the functions that entry's kind
calls (`samples` and `files`, or the labelled formats' `split`, `classes` and `class_file`).

A file that is not what its format says raises `ReaderError` naming the file and the problem.

What a reader decodes is bounded by what it reads, not by what the files claim (a pickle can
reference one JPEG any number of times, a 38 KB PNG can hold 4000x4000 zeros, a camera file can
name one frame thousands of times): the arrays of one file (a TAP-Vid pickle, a RealEstate10K
clip, a ScanNet scene) may take at most `max_decoded_bytes` of the bytes read, checked before
they are decoded, and each image decoded at most MAX_IMAGE_PIXELS pixels. JSON files are decoded
one top-level value at a time (fourds.data.readers.json_items), and a parse that runs out of
memory (under an address-space limit) is a ReaderError too (`within_memory`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TypeVar

from fourds.config.formats import FORMATS
from fourds.config.schema import MAX_FRAME_PIXELS
from fourds.errors import ReaderError

# Decoded bytes allowed: at least MIN_DECODED_BYTES, and EXPANSION per byte read (pixel arrays
# decode to about as many bytes as they take, JPEG frames and depth PNGs to several times more).
MIN_DECODED_BYTES = 1 << 30
EXPANSION = 64
MAX_IMAGE_PIXELS = MAX_FRAME_PIXELS  # per image, as curation's limit per frame (8K fits)

Read = TypeVar("Read")


def format_reader(format: str) -> ModuleType:
    """The module that reads benchmark `format` (its fourds.config.formats entry's `reader`)."""
    return importlib.import_module(FORMATS[format].reader)


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


def within_memory(
    read: Callable[[], Read], message: str, error: Callable[[str], Exception] = ReaderError
) -> Read:
    """What read() returns; if it runs out of memory, error(message) (a ReaderError, one line),
    raised once what read() held is freed."""
    try:
        return read()
    except MemoryError:
        pass  # leaving the block frees the error, its frames and what they held
    raise error(message)


def all_files(path: Path) -> list[Path]:
    """The file `path`, or every file under the folder `path` (what a run record hashes)."""
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def annotation_files(folder: Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
    """The files of `folder` with one of `suffixes`, in name order.

    Raises:
        FileNotFoundError: there is none.
    """
    found = sorted(path for path in folder.iterdir() if path.suffix in suffixes)
    if not found:
        raise FileNotFoundError(f"{folder}: no {'/'.join(suffixes)} {what} files")
    return found


def paired_video(annotation: Path) -> Path:
    """The video beside an annotation file: the one other file with the same stem.

    Raises:
        FileNotFoundError: there is none, or more than one.
    """
    videos = [
        path
        for path in annotation.parent.glob(f"{annotation.stem}.*")
        if path.stem == annotation.stem and path.suffix not in (".txt", ".json", ".csv")
    ]
    if len(videos) != 1:
        found = ", ".join(sorted(path.name for path in videos)) or "none"
        raise FileNotFoundError(
            f"{annotation}: expected one video named {annotation.stem}.<ext> beside it ({found})"
        )
    return videos[0]
