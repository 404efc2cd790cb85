"""Perception Test point tracks (Pătrăucean et al. 2023, arXiv:2305.13786) as the benchmark
ships them -> `Sample`s with `tracks` and `visible`.

Where they come from: github.com/google-deepmind/perception_test, README "Download the data and
annotations"; its materials (annotations and videos) are under CC BY 4.0, its code under Apache
2.0. The layout, from that README and the benchmark's notebooks (data_visualisation.ipynb,
baselines/single_point_tracking.ipynb):

    all_train.json, all_valid.json   (train_annotations.zip, valid_annotations.zip; also the
                                      point-tracking subset point_tracking_valid.json): one file
                                      per split, a mapping video id -> entry
        {"video_1234": {
            "metadata": {"video_id": "video_1234", "num_frames": 660, "split": "valid",
                         "frame_rate": 30, "resolution": [1080, 1920], ...},
            "point_tracking": [
                {"id": 0, "label": "...", "parent_objects": 3,
                 "frame_ids": [0, 1, 2, ...],                 # K annotated frames
                 "points": [[y_0, y_1, ...], [x_0, x_1, ...]]},  # 2 rows of K, in [0, 1]
                ...],
            ...the other tasks' annotations}}
    <video_id>.mp4                    (train_videos.zip, valid_videos.zip), in the folder
                                      `source.videos` at any depth

What fourds reads, and where each rule comes from:

- entries: those with a non-empty `point_tracking` list, in file order (the benchmark's
  baseline keeps the same); the file is the split, as published (all_train.json is train).
- points: two rows, y then x, normalised by the frame's height and width. The README's field
  table says "[y,x]"; both notebooks index the rows as y then x (data_visualisation.ipynb paints
  `points[0][i] * height, points[1][i] * width`). The README's "shape [N, 2]" disagrees with the
  notebooks' two rows: fourds reads two rows, as the notebooks do, and refuses other shapes.
  fourds' choice, which the benchmark does not state: (0, 0) is the top-left corner of the
  top-left pixel (TAP-Vid's convention), so a point becomes pixel (x * size, y * size) of the
  video stretched to size x size.
- visibility: a point is visible at the frames `frame_ids` lists and occluded at every other
  one, and positions at unlisted frames are 0 and never scored (how the baseline notebook's
  `evaluate` builds its ground truth before the TAP-Vid metrics).
- frames: the video must decode to `metadata.num_frames` frames, as both notebooks assert;
  `frame_ids` index them.
- scoring: the headline is fourds' own, per clip (fourds.evaluate.tasks.tracking: each clip's
  points queried at their first visible frame in it, predicted occlusion counted, the frames
  after the query scored, TAP-Vid metrics at 256 x 256 averaged over clips; average Jaccard is
  the metric the 4DS paper plots for Perception Test). It is not the challenge's: its baseline
  notebook queries each track once per video, at its first annotated frame, takes every
  prediction as visible, scores every frame but the query's (those before it as false
  positives) and averages videos; the readout stage gives those numbers too, under
  "perception_test_official" (fourds.evaluate.perception_test says how and how tracks are
  chained from clip to clip).

Memory and hostile input: the annotation file may hold at most MAX_ANNOTATION_BYTES (checked
before it is read; JSON parsing runs no code); it is read in chunks and its entries decoded one at
a time (fourds.data.readers.json_items), only those with point tracks kept, and what they keep may
take at most `max_kept_bytes` of the file's size (checked entry by entry, so that a file whose
entries expand is refused before it is decoded whole); a parse that runs out of memory is a
ReaderError; a video's frames may take at most `fourds.data.readers.max_decoded_bytes` of its
file size once decoded at size x size (checked by the decoder frame by frame); the track arrays
are allocated only after the video has decoded to the frame count the entry declares.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fourds.data.decode import decode_video
from fourds.data.readers import ReaderError, check_room, max_decoded_bytes, within_memory
from fourds.data.readers.json_items import file_chunks, object_items
from fourds.data.sample import Sample
from fourds.data.video import VideoError

PROVENANCE = (
    "Perception Test: annotations and videos from github.com/google-deepmind/perception_test, "
    "under CC BY 4.0"
)
VIDEO_SUFFIX = ".mp4"
MAX_ANNOTATION_BYTES = 2 << 30  # all_valid.json is released in an 81.5 MB zip
PARSED_FILES = 4  # the files whose entries a process keeps (read_point_tracks)
# What a file's entries may keep: at least MIN_KEPT_BYTES, and KEPT_PER_BYTE per byte of the
# file. Tracks over many frames keep less than their text (16 bytes a point, int64 frame id and
# float32 x, y, from about 20 to 45 characters of JSON: 0.4 of the file in
# tests/data/test_bounded_memory.py); tracks of a frame or two keep more (two arrays each).
MIN_KEPT_BYTES = 16 << 20
KEPT_PER_BYTE = 1.5
ARRAY_BYTES = 176  # a small numpy array's header, shape and allocations, measured on Linux


def max_kept_bytes(file_bytes: int) -> int:
    """Bytes the entries kept from an annotation file of `file_bytes` bytes may take."""
    return max(MIN_KEPT_BYTES, int(KEPT_PER_BYTE * file_bytes))


def malformed(message: str) -> ReaderError:
    """A ReaderError for a file that is not what the release ships: `message` (one line, naming
    the file), then where the data comes from and its terms."""
    return ReaderError(f"{message} ({PROVENANCE})")


@dataclasses.dataclass(frozen=True)
class PointTrackedVideo:
    """One entry of an annotation file that has point tracks.

    video_id: the entry's video, <video_id>.mp4.
    num_frames: T, the frames the entry says the video has.
    frame_ids: per track, int64 [K] annotated frames, each in [0, T).
    points: per track, float32 [K, 2] (x, y) in [0, 1] of the frame's width and height.
    where: "<file>: <video_id>", for messages.
    camera_moving: metadata.is_camera_moving where it is a boolean, else None (the baseline
        notebook reports its average Jaccard over each kind of video).
    """

    video_id: str
    num_frames: int
    frame_ids: tuple[np.ndarray, ...]
    points: tuple[np.ndarray, ...]
    where: str
    camera_moving: bool | None = None

    def arrays(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(tracks float32 [N, T, 2] (x, y) pixels of a size x size frame, 0 where not
        annotated; visible bool [N, T], True at the annotated frames)."""
        tracks = np.zeros((len(self.points), self.num_frames, 2), np.float32)
        visible = np.zeros(tracks.shape[:2], bool)
        for row, (frames, points) in enumerate(zip(self.frame_ids, self.points, strict=True)):
            tracks[row, frames] = points * size
            visible[row, frames] = True
        return tracks, visible

    def kept_bytes(self) -> int:
        """About the bytes the entry holds: its arrays, their tuples, its strings and itself."""
        parts = (self, self.video_id, self.where, self.frame_ids, self.points)
        arrays = (*self.frame_ids, *self.points)
        return sum(map(sys.getsizeof, parts)) + sum(ARRAY_BYTES + a.nbytes for a in arrays)


# read_point_tracks' entries by (path, the file's sha256), the PARSED_FILES latest
_PARSED: dict[tuple[Path, str], tuple[PointTrackedVideo, ...]] = {}


def read_point_tracks(path: str | Path) -> list[PointTrackedVideo]:
    """The entries of a Perception Test annotation file that have point tracks, in file order.
    The same bytes are parsed once per process (a readout stage reads the file for its run
    record, its clips and the challenge's scoring): the file is read and hashed each time.

    Raises:
        FileNotFoundError: there is no such file (naming where it is downloaded from).
        ReaderError: the file is larger than MAX_ANNOTATION_BYTES, is not JSON, an entry is
            not as the module docstring says, its entries would keep more than max_kept_bytes,
            or they do not fit in memory (one line naming the file, and the entry).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no Perception Test annotation file (all_train.json or all_valid.json, "
            f"in train_annotations.zip or valid_annotations.zip; {PROVENANCE})"
        )
    size = path.stat().st_size
    if size > MAX_ANNOTATION_BYTES:
        raise malformed(
            f"{path}: {size >> 20} MiB, over the {MAX_ANNOTATION_BYTES >> 20} MiB an annotation "
            "file may take (fourds.data.readers.perception_test)"
        )
    message = (
        f"{path}: out of memory decoding the point tracks of its {size >> 20} MiB (which may "
        f"keep {max_kept_bytes(size) >> 20} MiB)"
    )
    return list(within_memory(lambda: _cached(path, size), message, malformed))


def _cached(path: Path, size: int) -> tuple[PointTrackedVideo, ...]:
    """The entries of the file `path` of `size` bytes: those parsed from the same bytes before,
    else parsed now and kept in _PARSED under the digest of the bytes parsed (the oldest file's
    dropped past PARSED_FILES)."""
    digest = hashlib.sha256()
    for _ in file_chunks(path, digest):
        pass
    if (path, digest.hexdigest()) in _PARSED:
        return _PARSED[path, digest.hexdigest()]
    digest = hashlib.sha256()
    entries = _entries(path, file_chunks(path, digest), size)
    while len(_PARSED) >= PARSED_FILES:
        del _PARSED[next(iter(_PARSED))]  # the oldest
    _PARSED[path, digest.hexdigest()] = entries
    return entries


def _entries(path: Path, chunks: Iterable[bytes], size: int) -> tuple[PointTrackedVideo, ...]:
    """read_point_tracks' entries of the file `path` of `size` bytes, which are `chunks`,
    refused as soon as they keep more than max_kept_bytes(size)."""
    videos, kept, room = [], 0, max_kept_bytes(size)
    for key, entry in object_items(chunks, str(path), malformed):
        where = f"{path}: {key}"
        if not isinstance(entry, dict):
            raise malformed(f"{where} is not an object")
        tracks = entry.get("point_tracking")
        if tracks:
            videos.append(_entry(where, entry.get("metadata"), tracks))
            kept += videos[-1].kept_bytes()
            if kept > room:
                raise malformed(
                    f"{path}: its point tracks up to {key} take more than the {room >> 20} MiB "
                    f"of memory a file of {size >> 20} MiB may keep (max_kept_bytes: "
                    f"{KEPT_PER_BYTE}x its size, at least {MIN_KEPT_BYTES >> 20} MiB; "
                    "fourds.data.readers.perception_test)"
                )
    if not videos:
        raise malformed(f"{path}: no entry has point tracks")
    return tuple(videos)


def find_videos(folder: str | Path, entries: list[PointTrackedVideo]) -> list[Path]:
    """The video file of each entry: <video_id>.mp4 under `folder`, at any depth.

    Raises:
        FileNotFoundError: the folder, or an entry's video, is not there.
        ReaderError: a video is found twice under the folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: no Perception Test videos folder (train_videos.zip, valid_videos.zip; "
            f"{PROVENANCE})"
        )
    wanted = {f"{entry.video_id}{VIDEO_SUFFIX}" for entry in entries}
    found: dict[str, Path] = {}
    for path in folder.rglob(f"*{VIDEO_SUFFIX}"):
        if path.name in wanted:
            if path.name in found:
                raise malformed(
                    f"{folder}: {path.name} is found twice ({found[path.name]}, {path})"
                )
            found[path.name] = path
    missing = sorted(wanted - set(found))
    if missing:
        raise FileNotFoundError(
            f"{folder}: {len(missing)} of the {len(wanted)} point-tracked videos are not there "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}; {PROVENANCE})"
        )
    return [found[f"{entry.video_id}{VIDEO_SUFFIX}"] for entry in entries]


def samples(annotations: Path, size: int, videos: str) -> Iterator[Sample]:
    """The point-tracked videos of an annotation file (under `videos`) as Samples at size x
    size, decoded one at a time as the iterator reaches them; the file is read, and every video
    found, at once."""
    entries = read_point_tracks(annotations)
    paths = find_videos(videos, entries)
    return (_sample(entry, path, size) for entry, path in zip(entries, paths, strict=True))


def files(annotations: Path, videos: str) -> list[Path]:
    """The files a split reads: the annotation file and its point-tracked videos."""
    return [annotations, *find_videos(videos, read_point_tracks(annotations))]


def _sample(entry: PointTrackedVideo, path: Path, size: int) -> Sample:
    """One entry's video stretched to size x size (Perception Test's frames are not square;
    TAP-Vid's metrics are defined at 256 x 256) with its tracks.

    Raises:
        ReaderError: the video does not decode to the entry's num_frames frames.
        VideoError: the video does not decode, or would take more than max_decoded_bytes.
    """
    room = max_decoded_bytes(path.stat().st_size)
    check_room(str(path), f"{entry.num_frames} frames at {size}x{size}",
               entry.num_frames * size * size * 3, room)  # fmt: skip
    try:
        video = decode_video(path, size, crop="stretch", max_decoded_bytes=room)
    except VideoError as error:
        raise VideoError(f"{error} ({PROVENANCE})") from None
    if len(video.frames) != entry.num_frames:
        raise malformed(
            f"{entry.where}: metadata.num_frames is {entry.num_frames}, {path.name} decodes to "
            f"{len(video.frames)} frames"
        )
    tracks, visible = entry.arrays(size)
    return Sample(name=path.name, video=video.frames, tracks=tracks, visible=visible)


def _entry(where: str, metadata: Any, tracks: Any) -> PointTrackedVideo:
    """An entry's metadata and point_tracking list, checked."""
    if not isinstance(metadata, dict):
        raise malformed(f"{where}: no metadata object")
    video_id, frames = metadata.get("video_id"), metadata.get("num_frames")
    if not isinstance(video_id, str) or not video_id or "/" in video_id or video_id[0] == ".":
        raise malformed(f"{where}: metadata.video_id {video_id!r} is not a file stem")
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
        raise malformed(f"{where}: metadata.num_frames {frames!r} is not a frame count")
    if not isinstance(tracks, list):
        raise malformed(f"{where}: point_tracking is not a list")
    frame_ids, points = [], []
    for number, track in enumerate(tracks):
        ids, xy = _track(f"{where}: point track {number}", track, frames)
        frame_ids.append(ids)
        points.append(xy)
    moving = metadata.get("is_camera_moving")
    moving = moving if isinstance(moving, bool) else None
    return PointTrackedVideo(video_id, frames, tuple(frame_ids), tuple(points), where, moving)


def _track(where: str, track: Any, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """One point track -> (frame ids int64 [K], points float32 [K, 2] (x, y))."""
    if not isinstance(track, dict) or "frame_ids" not in track or "points" not in track:
        raise malformed(f"{where}: not an object with frame_ids and points")
    ids, rows = _numbers(track["frame_ids"]), _numbers(track["points"])
    if ids is None or ids.ndim != 1 or not len(ids) or ids.dtype.kind not in "iu":
        raise malformed(f"{where}: frame_ids is not a non-empty list of frame numbers")
    if rows is None or rows.shape != (2, len(ids)):
        shape = "not numbers" if rows is None else f"shape {list(rows.shape)}"
        raise malformed(
            f"{where}: points must be 2 rows (y, x) of {len(ids)} numbers, one per frame id "
            f"({shape})"
        )
    if ids.min() < 0 or ids.max() >= frames or len(np.unique(ids)) != len(ids):
        raise malformed(f"{where}: frame_ids are not distinct frames of [0, {frames})")
    xy = rows[::-1].T.astype(np.float32)  # rows (y, x) -> [K, (x, y)]
    if not np.isfinite(xy).all():
        raise malformed(f"{where}: a point is NaN or infinite")
    return ids.astype(np.int64), xy


def _numbers(value: Any) -> np.ndarray | None:
    """A JSON list (of lists) of numbers as a numpy array; None if it is not a rectangular
    array of numbers (booleans are not numbers here)."""
    if not isinstance(value, list):
        return None
    try:
        array = np.asarray(value)
    except (ValueError, OverflowError):  # ragged lists, integers past int64
        return None
    return array if array.dtype.kind in "iuf" else None
