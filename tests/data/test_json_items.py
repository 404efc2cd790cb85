"""A JSON object's items decoded one value at a time give what json.loads gives, and anything
else stops with one line naming the file."""

from __future__ import annotations

import json

import pytest

from fourds.data.readers import ReaderError
from fourds.data.readers.json_items import object_items


@pytest.mark.parametrize(
    "value",
    [{}, {"a": 1}, {"video_1": {"metadata": {"n": [1, 2.5]}, "point_tracking": []}, "b": None}],
)
def test_the_items_are_those_json_loads_gives(value):
    for text in (json.dumps(value), json.dumps(value, indent=2) + "\n"):
        assert list(object_items(text, "f.json")) == list(value.items())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "f.json: not a JSON object ('{' expected at offset 0)"),
        ('{"a": 1,}', "f.json: not JSON (Expecting value: line 1 column 9 (char 8))"),
        ('{"a": 1 "b": 2}', "f.json: not a JSON object (',' expected at offset 8)"),
        ('{"a": 1} {}', "f.json: not JSON (extra data at offset 9)"),
        ('{"a": 1, "a": 2}', "f.json: the key 'a' is there twice"),
        ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "f.json: not JSON (maximum recursion"),
    ],
)
def test_anything_else_is_one_line_naming_the_file(text, message):
    with pytest.raises(ReaderError) as raised:
        list(object_items(text, "f.json"))
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
