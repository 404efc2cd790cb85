"""Reading a stage's results files (metrics.json, clips.csv) for the report, `fourds answer` and
`fourds compare`: one cut short or garbled is a ResultsError naming it, not a traceback."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from fourds.errors import ResultsError


def read_metrics(path: str | Path) -> dict:
    """A metrics.json as its mapping.

    Raises:
        ResultsError: the file cannot be read as a JSON mapping (cut short, garbled).
    """
    try:
        metrics = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, ValueError) as error:
        raise ResultsError(f"{path}: damaged results file ({error})") from None
    if not isinstance(metrics, dict):
        raise ResultsError(f"{path}: damaged results file (not a mapping of metrics)")
    return metrics


def read_clip_rows(path: str | Path) -> list[dict[str, str]]:
    """A clips.csv's rows (column -> text).

    Raises:
        ResultsError: a row without every column, or the file is not CSV text.
    """
    try:
        with open(path, newline="") as handle:
            table = list(csv.reader(handle))
    except (UnicodeDecodeError, csv.Error) as error:
        raise ResultsError(f"{path}: damaged results file ({error})") from None
    header, body = (table[0], table[1:]) if table else ([], [])
    if any(len(row) != len(header) for row in body):
        raise ResultsError(f"{path}: damaged results file (a row without every column)")
    return [dict(zip(header, row, strict=True)) for row in body]
