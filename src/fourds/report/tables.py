"""The report's tables as Markdown: numbers to three significant figures, parameter counts and
FLOPs in human units, a task's stages side by side, and raw tables folded away; and the CSV
files of its tables and plot data."""

from __future__ import annotations

import csv
from pathlib import Path

from fourds.atomic import atomic_path
from fourds.report.lineage import link, readout_stage
from fourds.report.numbers import human_count, power_of_ten, significant

MISSING = "—"  # a value the stage does not have (the random-init control's pretraining loss)
IDENTITY = ("scale", "task", "regime")  # what a stage table's columns are named by


def markdown_table(rows: list[dict]) -> str:
    """Rows as a Markdown table: floats to three significant figures, None as a dash."""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[column]) for column in columns) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return MISSING
    return significant(value) if isinstance(value, float) else str(value)


def fold(summary: str, markdown: str) -> str:
    """`markdown` inside an HTML <details> block that opens on `summary`."""
    return f"<details><summary>{summary}</summary>\n\n{markdown}\n\n</details>"


def with_units(rows: list[dict]) -> list[dict]:
    """The rows with `params` as a count in human units ("1.96M") and `pretrain_flops` divided
    by the power of ten of the smallest, which the column's name carries once; these and
    `pretrain_loss` renamed for a reader."""
    exponent = power_of_ten([row["pretrain_flops"] for row in rows if "pretrain_flops" in row])
    names = {
        "params": "parameters",
        "pretrain_flops": f"pretraining FLOPs (×1e{exponent})",
        "pretrain_loss": "final pretraining loss",
    }
    converted = []
    for row in rows:
        values = dict(row)
        if "params" in values:
            values["params"] = human_count(values["params"])
        if "pretrain_flops" in values:
            values["pretrain_flops"] = values["pretrain_flops"] / 10**exponent
        converted.append({names.get(key, key): value for key, value in values.items()})
    return converted


def stage_table(rows: list[dict]) -> list[dict]:
    """Rows of one task (fourds.report.scaling.collect, one per scale and regime) turned on
    their side: a column per stage ("<scale> <regime>", linked to the readout stage's lineage),
    a row per quantity, each metric followed by its no-learning baseline's value; it fits a
    page however many metrics a task has."""
    stages = {
        link(
            f"{row['scale']} {row['regime']}",
            readout_stage(row["scale"], row["regime"]),
        ): row
        for row in with_units(rows)
    }
    keys = list(dict.fromkeys(key for row in stages.values() for key in row))
    order = []
    for key in keys:
        if key not in IDENTITY and not key.startswith("baseline_"):
            order += [key, f"baseline_{key}"] if f"baseline_{key}" in keys else [key]
    return [
        {"quantity": _quantity(key), **{stage: row.get(key) for stage, row in stages.items()}}
        for key in order
    ]


def _quantity(key: str) -> str:
    """A stage table's row label: 'abs_rel', and 'abs_rel, baseline' for its baseline."""
    return f"{key.removeprefix('baseline_')}, baseline" if key.startswith("baseline_") else key


def write_csv(path: str | Path, rows: list[dict], columns: list[str] | None = None) -> None:
    """Write `rows` (dicts with the same keys, the first's order the columns', or `columns`)
    as a CSV file with a header, atomically: the report's tables and plot data."""
    with atomic_path(path) as partial, open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
