"""Classification benchmarks whose split files list videos by file name, each with its class
(the formats with `lists_videos` in fourds.config.formats: `ssv2`, `kinetics`), as readout
clips.

    source.train, source.test   the split files: SSv2's train.json and validation.json (with
                                labels.json beside train.json), or Kinetics' CSVs
                                (fourds.data.readers.ssv2, fourds.data.readers.kinetics)
    source.videos               the folder of the videos, at any depth: flat, or in per-class
                                or per-split folders (a video is found by its file name)

The classes, in the order of the readout's outputs, are the benchmark's label list, whether or
not every class has a video here: SSv2's labels.json in its index order (174), or the sorted
distinct labels of the Kinetics training CSV (400, 600 or 700). A video of any other class, in
either split, stops the readout (ReaderError).

A listed video that is not in the folder is skipped: how many, and the first few names, are
said once per split on stderr. A video that is there but does not decode stops the readout
with the reason (VideoError); delete it to skip it as missing.

Each video gives one clip (a single view, as the readout scores it): `frames` frames every
`frame_stride`-th, centred in the video (a shorter video repeats its last frame), each decoded
frame resized so that its shorter side is `size` and centre-cropped (fourds.data.decode).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fourds.config import SourceConfig
from fourds.config.formats import where_to_get
from fourds.data.decode import decode_video
from fourds.data.readers import ReaderError, format_reader
from fourds.data.sample import LabelledVideo, Sample
from fourds.data.video import VideoError

SHOWN_MISSING = 3  # names of missing videos the report gives


def class_file(source: SourceConfig) -> Path:
    """The file the benchmark's label list is read from: SSv2's labels.json beside the train
    split, or the Kinetics training CSV."""
    return format_reader(source.format).class_file(Path(source.train))


def benchmark_classes(source: SourceConfig) -> tuple[str, ...]:
    """The benchmark's class names, in the order of the readout's outputs.

    Raises:
        FileNotFoundError: SSv2's labels.json is not beside the train split file.
        ReaderError: the label list is malformed.
    """
    path = class_file(source)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {source.format} label list (beside the train split)")
    return format_reader(source.format).classes(path)


def listed_videos(source: SourceConfig, split: str) -> tuple[list[tuple[Path, str]], list[str]]:
    """The videos the `split` ("train" or "test") file lists: ([(path, class)] of those in
    source.videos, in file order; the file names of those that are not).

    Raises:
        FileNotFoundError: the split file or the videos folder does not exist.
        ReaderError: the split file is malformed, lists a class that is not the benchmark's,
            or names a video found twice under the folder.
    """
    split_file, folder = Path(getattr(source, split)), Path(source.videos)
    for path, what in ((split_file, f"{split} split file"), (folder, "videos folder")):
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: no such {source.format} {what}; {where_to_get(source.format)}"
            )
    reader = format_reader(source.format)
    listed, suffix = reader.split(split_file), reader.VIDEO_SUFFIX
    _check_classes(listed, benchmark_classes(source), class_file(source))
    found: dict[str, Path] = {}
    for path in folder.rglob(f"*{suffix}"):
        if path.name in found:
            raise ReaderError(f"{folder}: {path.name} is found twice ({found[path.name]}, {path})")
        found[path.name] = path
    present = [(found[video.file], video.label) for video in listed if video.file in found]
    missing = [video.file for video in listed if video.file not in found]
    return present, missing


def labelled_samples(source: SourceConfig, split: str, frames: int, size: int) -> Iterator[Sample]:
    """One Sample per video of the `split` file that source.videos holds: a clip of `frames`
    frames at size x size, with its class as `label` (see the module docstring).

    The videos are decoded as the iterator reaches them.

    Raises:
        ReaderError: as `listed_videos`, or none of the listed videos is in the folder (at once).
        VideoError: a video does not decode (when the iterator reaches it).
    """
    present, missing = listed_videos(source, split)
    split_file = getattr(source, split)
    if not present:
        raise ReaderError(
            f"{split_file}: none of its {len(missing)} videos is under {source.videos}"
        )
    if missing:
        shown = ", ".join(missing[:SHOWN_MISSING]) + (
            ", ..." if len(missing) > SHOWN_MISSING else ""
        )
        print(
            f"{split_file}: {len(missing)} of {len(missing) + len(present)} listed videos are "
            f"not under {source.videos}, skipped: {shown}",
            file=sys.stderr,
        )
    return (  # decoded one by one as they are read
        Sample(name=path.name, video=_clip(path, frames, size, source.frame_stride), label=label)
        for path, label in present
    )


def labelled_files(source: SourceConfig) -> list[Path]:
    """Every file a readout on this source reads: the split files, the label list and the
    videos found (for its run record)."""
    files = [Path(source.train), Path(source.test), class_file(source)]
    for split in ("train", "test"):
        files += [path for path, _ in listed_videos(source, split)[0]]
    return sorted(set(files))


def clip_index(count: int, frames: int, stride: int) -> np.ndarray:
    """[frames] indices of a video's `count` frames: every `stride`-th, centred, the last
    frame repeated where the video is shorter than the clip."""
    span = (frames - 1) * stride + 1
    start = max(0, (count - span) // 2)
    return np.minimum(start + stride * np.arange(frames), count - 1)


def _clip(path: Path, frames: int, size: int, stride: int) -> np.ndarray:
    """uint8 [frames, size, size, 3]: the video's centred clip."""
    try:
        video = decode_video(path, size, crop="center")
    except VideoError as error:
        raise VideoError(f"{error}; delete the file to skip it as a missing video") from None
    return video.frames[clip_index(len(video.frames), frames, stride)]


def _check_classes(
    listed: list[LabelledVideo], classes: tuple[str, ...], class_source: Path
) -> None:
    known = set(classes)
    for video in listed:
        if video.label not in known:
            raise ReaderError(
                f"{video.entry}: class {video.label!r} is not one of the {len(classes)} classes "
                f"of {class_source}"
            )
