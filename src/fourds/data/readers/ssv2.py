"""Something-Something v2's annotations, as published (its "labels" download):

    labels.json        {"Approaching something with your camera": "0", ...}: class name -> its
                       index (a string or an int), 174 classes numbered 0 to 173
    train.json, validation.json
                       [{"id": "78687", "label": "holding potato next to vicks vaporub bottle",
                         "template": "Holding [something] next to [something]",
                         "placeholders": ["potato", "vicks vaporub bottle"]}, ...]

An entry's class is its template with the square brackets removed ("Holding something next to
something"), which is how the benchmark's class names are written; its video is <id>.webm
(VP9). test.json has no templates: it cannot be scored.
"""

from __future__ import annotations

from pathlib import Path

from fourds.data.readers import ReaderError, within_memory
from fourds.data.readers.json_items import array_items, file_chunks, object_items
from fourds.data.sample import LabelledVideo

VIDEO_SUFFIX = ".webm"


def class_file(train: Path) -> Path:
    """The label list: labels.json beside the train split file."""
    return train.parent / "labels.json"


def classes(path: str | Path) -> tuple[str, ...]:
    """The class names of a labels.json, in the order of their indices.

    Raises:
        ReaderError: naming the file: not JSON, not a mapping of class names to integer
            indices (a name twice), or indices that are not 0 to C-1, each once.
    """
    path = Path(path)
    labels = dict(object_items(file_chunks(path), str(path)))
    if not labels:
        raise ReaderError(f"{path}: not a mapping of class names to indices")
    try:
        index = {str(name): int(value) for name, value in labels.items()}
    except (TypeError, ValueError) as error:
        raise ReaderError(f"{path}: a class index is not an integer ({error})") from None
    if sorted(index.values()) != list(range(len(index))):
        raise ReaderError(f"{path}: the class indices are not 0 to {len(index) - 1}, each once")
    return tuple(sorted(index, key=index.get))


def split(path: str | Path) -> list[LabelledVideo]:
    """The videos of a train.json or validation.json, each with its class, in file order.

    Raises:
        ReaderError: naming the file (and the entry): not JSON, not a list, an entry
            without a string `id` and `template`, or more entries than fit in memory.
    """
    path = Path(path)
    return within_memory(lambda: _videos(path), f"{path}: out of memory reading its entries")


def _videos(path: Path) -> list[LabelledVideo]:
    """split's videos of the file `path`, its entries decoded one at a time."""
    videos = []
    for number, entry in enumerate(array_items(file_chunks(path), str(path))):
        where = f"{path}: entry {number}"
        if not isinstance(entry, dict):
            raise ReaderError(f"{where} is not an object")
        video, template = entry.get("id"), entry.get("template")
        if not isinstance(video, str | int) or not isinstance(template, str):
            raise ReaderError(
                f"{where} has no string id and template (test.json has no templates: it is "
                "not scored)"
            )
        label = template.replace("[", "").replace("]", "")
        videos.append(LabelledVideo(f"{video}{VIDEO_SUFFIX}", label, f"{where} (id {video})"))
    return videos
