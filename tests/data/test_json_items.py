"""A JSON object's (or list's) items decoded one value at a time from chunks of its bytes give
what json.loads gives, wherever the chunks are cut, and anything else stops with one line naming
the file."""

from __future__ import annotations

import hashlib
import json
import sys

import pytest

from fourds.data.readers import ReaderError, json_items
from fourds.data.readers.json_items import array_items, file_chunks, object_items

VALUES = [
    {},
    {"a": 1},
    {"video_1": {"metadata": {"n": [1, 2.5]}, "point_tracking": []}, "b": None},
    {"é": "snow ☃ 🎉", "n": -1.5e-07, "big": 12345678901234567890, "t": True, "f": False},
    {"x": 10, "y": -0.25, "z": 'a \\ " \u2028 \\u escape'},
]


def cut(data: bytes, size: int) -> list[bytes]:
    """`data` in chunks of `size` bytes (multi-byte characters cut too)."""
    return [data[start : start + size] for start in range(0, len(data), size)]


@pytest.mark.parametrize("value", VALUES)
def test_the_items_are_those_json_loads_gives_wherever_the_chunks_are_cut(value):
    for text in (json.dumps(value), json.dumps(value, indent=2, ensure_ascii=False) + "\n"):
        data = text.encode()
        for size in (1, 2, 3, 7, len(data) or 1):
            assert list(object_items(cut(data, size), "f.json")) == list(value.items())
            items = list(array_items(cut(json.dumps(list(value.values())).encode(), size), "f"))
            assert items == list(value.values())


def test_a_top_level_number_cut_by_a_chunk_is_read_whole():
    for text in ('{"a": 1.5e-3, "b": -Infinity}', "[12345, 1.25E+2, -0.5, true, null]"):
        items = object_items if text[0] == "{" else array_items
        expected = json.loads(text)
        expected = list(expected.items()) if text[0] == "{" else expected
        for size in range(1, len(text)):
            assert list(items(cut(text.encode(), size), "f.json")) == expected


def test_a_file_is_read_in_chunks_each_fed_to_its_digest(tmp_path, monkeypatch):
    monkeypatch.setattr(json_items, "CHUNK_BYTES", 5)
    path, digest = tmp_path / "f.json", hashlib.sha256()
    path.write_text('{"a": [1, 2, 3], "b": "c"}')
    assert [len(chunk) for chunk in file_chunks(path, digest)] == [5, 5, 5, 5, 5, 1]
    assert digest.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert list(object_items(file_chunks(path), str(path))) == [("a", [1, 2, 3]), ("b", "c")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "f.json: not a JSON object ('{' expected at offset 0)"),
        ("[1, 2]", "f.json: not a JSON object ('{' expected at offset 0)"),
        ('{"a": 1,}', "f.json: not a JSON object (a key expected at offset 8)"),
        ('{"a": 1, "b": }', "f.json: not JSON (Expecting value at offset 14)"),
        ('{"a": 1 "b": 2}', "f.json: not a JSON object (',' or '}' expected at offset 8)"),
        ('{"a" 1}', "f.json: not a JSON object (':' expected at offset 5)"),
        ('{"a": 1} {}', "f.json: not JSON (extra data at offset 9)"),
        ('{"a": 1, "a": 2}', "f.json: the key 'a' is there twice"),
        ('{"a": "b', "f.json: not JSON (Unterminated string starting at offset 6)"),
        ('{"a": [1, 2', "f.json: not JSON (Expecting ',' delimiter at offset 11)"),
        ('{"a": "\xff"}', "f.json: not JSON ('utf-8' codec can't decode byte 0xff"),
        ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "f.json: not JSON (maximum recursion"),
    ],
    ids=range(12),
)
def test_anything_else_is_one_line_naming_the_file(text, message):
    data = text.encode("latin-1") if "\xff" in text else text.encode()
    for size in (1, 4096):
        with pytest.raises(ReaderError) as raised:
            list(object_items(cut(data, size), "f.json"))
        assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


@pytest.mark.skipif(not hasattr(sys, "get_int_max_str_digits"), reason="no digit limit")
def test_a_number_past_the_digit_limit_is_one_line():
    with pytest.raises(ReaderError, match=r"^f.json: not JSON \(Exceeds the limit \(4300 digits"):
        list(object_items([b'{"a": ' + b"1" * 5000 + b"}"], "f.json"))


def test_a_list_is_one_and_a_value_too_long_is_refused_as_it_is_read(monkeypatch):
    with pytest.raises(ReaderError, match=r"^f: not a JSON list \('\[' expected at offset 0\)"):
        list(array_items([b'{"a": 1}'], "f"))
    monkeypatch.setattr(json_items, "MAX_VALUE_CHARS", 100)
    read = []

    def chunks():
        yield b'{"a": 1, "b": "'
        for _ in range(1000):
            read.append(50)
            yield b"x" * 50

    with pytest.raises(ReaderError, match=r"^f: the value at offset 14 is longer than 0 Mi"):
        list(object_items(chunks(), "f"))
    assert sum(read) < 500  # refused as it is read, not at the end of the file
