"""The items of a JSON file's top-level object or list, decoded one at a time from its bytes read
in chunks: a file of many large values (Perception Test's annotation files, every task's
annotations of thousands of videos) is read holding one value's text and objects at a time,
never the whole text, so that what a reader keeps can be bounded as it goes.

Memory: the text held is at most the value being decoded plus a chunk (CHUNK_BYTES); a value
whose text is still incomplete after MAX_VALUE_CHARS characters is refused.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from fourds.data.readers import ReaderError

CHUNK_BYTES = 1 << 20
MAX_VALUE_CHARS = 64 << 20  # far past one video's annotations; bounds what one decode holds
# A value cut by the end of the text read so far fails (or, a number, decodes short) within
# this many characters of that end ("-Infinit", "1.5e-"); further back, the failure is final.
_CUT = 9

_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def file_chunks(path: Path, digest: hashlib._Hash | None = None) -> Iterator[bytes]:
    """The bytes of the file `path`, CHUNK_BYTES at a time, each also fed to `digest`."""
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            if digest is not None:
                digest.update(chunk)
            yield chunk


def object_items(
    chunks: Iterable[bytes], where: str, error: Callable[[str], Exception] = ReaderError
) -> Iterator[tuple[str, Any]]:
    """(key, value) of the JSON object whose UTF-8 bytes are `chunks`, in order, each value
    decoded as it is reached.

    Raises:
        `error` (ReaderError): the bytes are not one JSON object, name a key twice, or hold a
            value longer than MAX_VALUE_CHARS (one line naming `where` and the offset).
    """
    text, seen = _Text(chunks, where, error, "object"), set()
    for _ in text.members("{", "}"):
        if text.next() != '"':
            raise error(f"{where}: not a JSON object (a key expected at offset {text.offset})")
        key = text.value()
        if key in seen:
            raise error(f"{where}: the key {key!r} is there twice")
        seen.add(key)
        text.expect(":")
        yield key, text.value()


def array_items(
    chunks: Iterable[bytes], where: str, error: Callable[[str], Exception] = ReaderError
) -> Iterator[Any]:
    """The values of the JSON list whose UTF-8 bytes are `chunks`, in order, each decoded as
    it is reached.

    Raises:
        `error` (ReaderError): the bytes are not one JSON list, or hold a value longer than
            MAX_VALUE_CHARS (one line naming `where` and the offset).
    """
    text = _Text(chunks, where, error, "list")
    for _ in text.members("[", "]"):
        yield text.value()


class _Text:
    """The text of `chunks` read as it is needed: `text[index:]` is read and not yet consumed,
    `base` the offset (in characters) of text[0] in the whole text."""

    def __init__(self, chunks: Iterable[bytes], where: str, error: Callable, kind: str):
        self.chunks, self.utf8 = iter(chunks), codecs.getincrementaldecoder("utf-8")()
        self.text, self.index, self.base, self.done = "", 0, 0, False
        self.where, self.error, self.kind = where, error, kind

    @property
    def offset(self) -> int:
        return self.base + self.index

    def members(self, opening: str, closing: str) -> Iterator[None]:
        """Consume `opening`, then yield once per member (which the caller consumes), consuming
        the commas between and `closing`; then check that only spaces are left."""
        self.expect(opening)
        if self.next() == closing:
            self.index += 1
        else:
            while True:
                yield
                if self.expect("," + closing) == closing:
                    break
        if self.next():
            raise self.error(f"{self.where}: not JSON (extra data at offset {self.offset})")

    def next(self) -> str:
        """The next character that is not a space, not consumed ('' at the end of the text)."""
        while True:
            self.index = _SPACE.match(self.text, self.index).end()
            if self.index < len(self.text) or self.done:
                return self.text[self.index : self.index + 1]
            self.read(1)

    def expect(self, marks: str) -> str:
        """Consume the next character that is not a space, one of `marks`; return it."""
        mark = self.next()
        if not mark or mark not in marks:
            expected = " or ".join(map(repr, marks))
            raise self.error(
                f"{self.where}: not a JSON {self.kind} ({expected} expected at offset "
                f"{self.offset})"
            )
        self.index += 1
        return mark

    def value(self) -> Any:
        """Decode and consume the next value, reading until it is whole."""
        self.next()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.index)
            except json.JSONDecodeError as reason:
                cut = reason.pos + _CUT >= len(self.text) or reason.msg.startswith("Unterminated")
                if self.done or not cut:
                    what = f"{reason.msg.removesuffix(' at')} at offset {self.base + reason.pos}"
                    raise self.error(f"{self.where}: not JSON ({what})") from None
            except (RecursionError, ValueError) as reason:  # nesting, digits past int's limit
                raise self.error(f"{self.where}: not JSON ({reason})") from None
            else:
                if self.done or end + _CUT < len(self.text):
                    self.index = end
                    return value
                del value  # decoded again from the longer text
            pending = len(self.text) - self.index
            if pending > MAX_VALUE_CHARS:
                raise self.error(
                    f"{self.where}: the value at offset {self.offset} is longer than "
                    f"{MAX_VALUE_CHARS >> 20} Mi characters (fourds.data.readers.json_items "
                    "decodes a file one value at a time)"
                )
            self.read(pending)  # doubles it: decoding a value costs O(its length) in all

    def read(self, count: int) -> None:
        """Read at least `count` more characters (fewer at the end), dropping those consumed."""
        parts, added = [self.text[self.index :]], 0
        self.base, self.index = self.offset, 0
        while added < count and not self.done:
            chunk = next(self.chunks, None)
            self.done = chunk is None
            try:
                part = self.utf8.decode(chunk or b"", final=self.done)
            except UnicodeDecodeError as reason:
                raise self.error(f"{self.where}: not JSON ({reason})") from None
            parts.append(part)
            added += len(part)
        self.text = "".join(parts)
