"""Kinetics (400, 600, 700) annotation CSVs, as published:

    label,youtube_id,time_start,time_end,split
    abseiling,--33Lscn6sk,4,14,train

one row per clip. Its video is the YouTube video's seconds [time_start, time_end], which the
downloaders save as <youtube_id>_<time_start:06d>_<time_end:06d>.mp4. The classes are the
distinct labels of the training CSV, sorted (400, 600 or 700). The split column is not read:
each file is one split.
"""

from __future__ import annotations

import csv
from pathlib import Path

from fourds.data.readers import ReaderError
from fourds.data.sample import LabelledVideo

KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")
VIDEO_SUFFIX = ".mp4"


def class_file(train: Path) -> Path:
    """The label list: the training CSV's labels (`classes`)."""
    return train


def split(path: str | Path) -> list[LabelledVideo]:
    """The videos of an annotation CSV, each with its label, in file order.

    Raises:
        ReaderError: naming the file (and the line): a required column missing, an empty
            label or YouTube id, or a time that is not a whole number of seconds.
    """
    path = Path(path)
    videos = []
    try:
        with open(path, newline="") as handle:
            rows = csv.DictReader(handle)
            missing = [name for name in KINETICS_COLUMNS if name not in (rows.fieldnames or ())]
            if missing:
                raise ReaderError(
                    f"{path}: no {missing} column(s); a Kinetics CSV has the header "
                    f"{','.join(KINETICS_COLUMNS)},split"
                )
            for row in rows:
                where = f"{path}: line {rows.line_num}"
                label, video = (row["label"] or "").strip(), (row["youtube_id"] or "").strip()
                if not label or not video:
                    raise ReaderError(f"{where} has no label or no youtube_id")
                start, end = _seconds(row["time_start"], where), _seconds(row["time_end"], where)
                name = f"{video}_{start:06d}_{end:06d}{VIDEO_SUFFIX}"
                videos.append(LabelledVideo(name, label, where))
    except (UnicodeDecodeError, csv.Error) as error:
        raise ReaderError(f"{path}: not a CSV file ({error})") from None
    return videos


def classes(path: str | Path) -> tuple[str, ...]:
    """The sorted distinct labels of an annotation CSV."""
    return tuple(sorted({video.label for video in split(path)}))


def _seconds(value: str | None, where: str) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise ReaderError(f"{where}: time {value!r} is not a whole number of seconds") from None
