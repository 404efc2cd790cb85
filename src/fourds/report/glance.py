"""The README's "results at a glance": one small markdown table per study, written from the
pinned `metrics.json` of its readout stages (git holds them; `dvc.lock` holds their md5).

A row per task: its headline for each scale's pretrained readout, for the random-init control
at the largest scale, and for the task's no-learning baseline (scored by the largest scale's
readout stage on the same test clips), to three significant figures as the report writes them.
`python -m fourds.report.glance` prints the tables of the default study (`runs/`) and of the
shipped reference study (`reports/reference/`); tests/test_readme.py checks the README's
copies cell by cell.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fourds.config import readout_name
from fourds.config.regimes import PRETRAINED, verdict_control
from fourds.report.numbers import significant
from fourds.tasks import TASKS

# the tasks the embedded studies read out (readout.tasks of experiments/readout/embedded.yaml)
EMBEDDED_TASKS = ("depth", "pose", "tracking", "boxes", "classification")


@dataclass(frozen=True)
class Study:
    """A study whose results the README shows: its name there, the folder holding its stage
    outputs (`readout/<scale>-<task>-<regime>/metrics.json`), its scales, smallest first, the
    regimes it ran (the control column is `verdict_control`'s) and the tasks it read out."""

    name: str
    runs: Path
    scales: tuple[str, ...]
    regimes: tuple[str, ...] = ("frozen", "initial")
    tasks: tuple[str, ...] = EMBEDDED_TASKS

    @property
    def control(self) -> str:
        return verdict_control(self.regimes)


STUDIES = (
    Study("default", Path("runs"), ("cpu_s", "cpu_l"), ("frozen", "initial")),
    Study(
        "reference",
        Path("reports/reference"),
        ("ref_s", "ref_m", "ref_l"),
        ("frozen", "random_init"),
    ),
)


def header(study: Study) -> list[str]:
    """The table's column names."""
    largest = study.scales[-1]
    return ["task (headline)", *study.scales, f"control at {largest}", "no-learning baseline"]


def rows(study: Study, root: Path = Path(".")) -> list[list[str]]:
    """The table's rows, a cell per column of `header`, read from the study's metrics."""

    def metrics(scale: str, task: str, regime: str) -> dict:
        path = root / study.runs / "readout" / readout_name(scale, task, regime) / "metrics.json"
        return json.loads(path.read_text())

    table = []
    for task in study.tasks:
        entry = TASKS[task]
        key = entry.headline
        largest = metrics(study.scales[-1], task, PRETRAINED)
        cells = [entry.title]
        cells += [significant(metrics(scale, task, PRETRAINED)[key]) for scale in study.scales]
        cells.append(significant(metrics(study.scales[-1], task, study.control)[key]))
        cells.append(significant(largest["baseline"][key]))
        table.append(cells)
    return table


def markdown(study: Study, root: Path = Path(".")) -> str:
    """The study's table as markdown, as the README holds it."""
    lines = [header(study), ["---"] * len(header(study)), *rows(study, root)]
    return "".join("| " + " | ".join(cells) + " |\n" for cells in lines)


if __name__ == "__main__":
    for study in STUDIES:
        print(f"{study.name} ({study.runs}):\n{markdown(study)}")
