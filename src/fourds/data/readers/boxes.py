"""Per-frame box tracks, in one of two documented formats (our own; there is no single public
one), both in pixels of the video they annotate:

JSON:
    {"frames": T,
     "objects": [{"id": "car-1", "boxes": [[x0, y0, x1, y1] or null, ...T entries]}, ...]}
    null marks a frame where the object is not visible.

CSV (header required; a frame without a row for an object means it is not visible):
    object,frame,x0,y0,x1,y1
    car-1,0,10.5,20,60,80

Both give boxes float32 [M, T, 4] (x0, y0, x1, y1) and visible bool [M, T], objects in order of
first appearance in the file; boxes are NaN where not visible.

A split is a folder of box-track files <clip>.json or <clip>.csv, each beside its video
<clip>.<ext>; boxes are in pixels of the video as displayed, frame i its i-th decoded frame.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fourds.data.decode import decode_video
from fourds.data.readers import (
    ReaderError,
    all_files,
    annotation_files,
    paired_video,
    within_memory,
)
from fourds.data.readers.json_items import file_chunks, object_items
from fourds.data.sample import Sample


def samples(path: Path, size: int, videos: str = "") -> Iterator[Sample]:
    """Every box-tracked clip of a split folder at size x size, read as the iterator reaches
    it."""
    tracks = annotation_files(path, (".json", ".csv"), "box_tracks")
    return (clip_sample(track, size) for track in tracks)


def files(path: Path, videos: str = "") -> list[Path]:
    """Every file of the split folder."""
    return all_files(path)


def clip_sample(tracks_path: Path, size: int) -> Sample:
    """A box-tracked clip: its video and boxes, both at size x size."""
    video = decode_video(paired_video(tracks_path), size, crop="stretch")
    _, boxes, visible = read_box_tracks(tracks_path, frames=len(video.frames))
    if boxes.shape[1] > len(video.frames):
        raise ReaderError(
            f"{tracks_path}: annotates {boxes.shape[1]} frames, the video has {len(video.frames)}"
        )
    width, height = video.source_size
    scale = np.array([size / width, size / height] * 2, np.float32)
    return Sample(
        name=tracks_path.name,
        video=video.frames[: boxes.shape[1]],
        boxes=boxes * scale,
        box_visible=visible,
    )


def read_box_tracks(
    path: str | Path, frames: int | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read a .json or .csv box-track file -> (object ids, boxes [M, T, 4], visible [M, T]).

    Args:
        frames: T, the video's frame count: JSON files state theirs, which may not exceed it;
            for CSV files None takes the last annotated frame + 1.

    Raises:
        ReaderError: naming the file and the entry, for malformed content, a frame outside
            [0, T), a box that is not 4 finite numbers, or x1 < x0, y1 < y0.
    """
    path = Path(path)
    if path.suffix == ".json":
        message = f"{path}: out of memory reading its box tracks"
        ids, tracks, declared = within_memory(lambda: _from_json(path), message)
        if frames is not None and declared > frames:
            raise ReaderError(f"{path}: annotates {declared} frames, the video has {frames}")
        frames = declared
    elif path.suffix == ".csv":
        ids, tracks, frames = _from_csv(path, frames)
    else:
        raise ReaderError(f"{path}: box tracks must be .json or .csv")
    boxes = np.full((len(ids), frames, 4), np.nan, dtype=np.float32)
    for row, track in enumerate(tracks):
        for frame, box in track.items():
            if not 0 <= frame < frames:
                raise ReaderError(
                    f"{path}: object {ids[row]} has frame {frame} outside [0, {frames})"
                )
            if len(box) != 4 or not np.isfinite(np.asarray(box, np.float32)).all():
                raise ReaderError(
                    f"{path}: object {ids[row]} frame {frame}: box {box} is not 4 finite "
                    "float32 numbers"
                )
            x0, y0, x1, y1 = box
            if x1 < x0 or y1 < y0:
                raise ReaderError(f"{path}: object {ids[row]} frame {frame}: box {box} is inverted")
            boxes[row, frame] = box
    return ids, boxes, ~np.isnan(boxes[..., 0])


def _from_json(path: Path) -> tuple[list[str], list[dict[int, list[float]]], int]:
    """A JSON box-track file -> (object ids, per object its boxes by frame, T)."""
    data = dict(object_items(file_chunks(path), str(path)))
    try:
        frames = data["frames"]
        if not isinstance(frames, int) or isinstance(frames, bool) or frames < 0:
            raise ReaderError(f"frames={frames!r} is not a frame count")
        ids, tracks = [], []
        for entry in data["objects"]:
            if len(entry["boxes"]) != frames:
                raise ReaderError(
                    f"object {entry['id']} has {len(entry['boxes'])} boxes, not {frames}"
                )
            ids.append(str(entry["id"]))
            tracks.append(
                {
                    t: [float(v) for v in box]
                    for t, box in enumerate(entry["boxes"])
                    if box is not None
                }
            )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ReaderError(f"{path}: not a box-track JSON file ({error})") from None
    return ids, tracks, frames


def _from_csv(
    path: Path, frames: int | None
) -> tuple[list[str], list[dict[int, list[float]]], int]:
    tracks: dict[str, dict[int, list[float]]] = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        expected = ["object", "frame", "x0", "y0", "x1", "y1"]
        if reader.fieldnames != expected:
            raise ReaderError(f"{path}: the header must be {','.join(expected)}")
        for line, row in enumerate(reader, start=2):
            try:
                box = [float(row[key]) for key in ("x0", "y0", "x1", "y1")]
                frame = int(row["frame"])
            except (TypeError, ValueError):
                raise ReaderError(f"{path}:{line}: not object,frame,x0,y0,x1,y1 values") from None
            if frame < 0 or (frames is not None and frame >= frames):
                raise ReaderError(
                    f"{path}:{line}: frame {frame} is outside the video ({frames} frames)"
                )
            tracks.setdefault(row["object"], {})[frame] = box
    last = max((frame for track in tracks.values() for frame in track), default=-1)
    return list(tracks), list(tracks.values()), frames if frames is not None else last + 1
