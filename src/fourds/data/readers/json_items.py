"""The items of a JSON object decoded one value at a time: a file that maps many keys to large
values (Perception Test's annotation files, every task's annotations of thousands of videos)
is read holding its text and one value's objects, not every value's at once."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from fourds.data.readers import ReaderError

_SPACE = re.compile(r"[ \t\n\r]*")


def object_items(
    text: str, where: str, error: Callable[[str], Exception] = ReaderError
) -> Iterator[tuple[str, Any]]:
    """(key, value) of the JSON object `text`, in order, each value decoded as it is reached.

    Raises:
        `error` (ReaderError): `text` is not one JSON object, or names a key twice (one line
            naming `where` and the offset).
    """
    decoder, seen = json.JSONDecoder(), set()
    index = _expect(text, _skip(text, 0), "{", where, error)
    if text.startswith("}", _skip(text, index)):
        index = _skip(text, index) + 1
    else:
        while True:
            key, index = _decode(decoder, text, _skip(text, index), where, error)
            if not isinstance(key, str):
                raise error(f"{where}: not a JSON object (a key at offset {index})")
            if key in seen:
                raise error(f"{where}: the key {key!r} is there twice")
            seen.add(key)
            index = _expect(text, _skip(text, index), ":", where, error)
            value, index = _decode(decoder, text, _skip(text, index), where, error)
            yield key, value
            index = _skip(text, index)
            if text.startswith("}", index):
                index += 1
                break
            index = _expect(text, index, ",", where, error)
    if _skip(text, index) != len(text):
        raise error(f"{where}: not JSON (extra data at offset {_skip(text, index)})")


def _skip(text: str, index: int) -> int:
    return _SPACE.match(text, index).end()


def _expect(text: str, index: int, mark: str, where: str, error: Callable) -> int:
    if not text.startswith(mark, index):
        raise error(f"{where}: not a JSON object ({mark!r} expected at offset {index})")
    return index + 1


def _decode(
    decoder: json.JSONDecoder, text: str, index: int, where: str, error: Callable
) -> tuple[Any, int]:
    try:
        return decoder.raw_decode(text, index)
    except (json.JSONDecodeError, RecursionError) as reason:
        raise error(f"{where}: not JSON ({reason})") from None
