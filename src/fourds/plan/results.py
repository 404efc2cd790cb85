"""Benchmark result files the plan reads: absent is no measurement, malformed is one line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fourds.config import ConfigError

Parsed = TypeVar("Parsed")


def read_result(
    path: str | Path, kind: str, parse: Callable[[dict[str, Any]], Parsed]
) -> Parsed | None:
    """`parse` of the JSON record at `path`; None when there is no such file.

    Raises:
        ConfigError: the record is not a `kind` (a key, type or value `parse` expects is not
            there), naming the file; or `parse` refused it with a ConfigError of its own.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        return parse(json.loads(path.read_text()))
    except ConfigError:  # `parse`'s own one-line refusal
        raise
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{path} is not a {kind} ({error!r})") from None
