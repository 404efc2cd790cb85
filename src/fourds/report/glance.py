"""The README's "results at a glance": per study, one small markdown table and the sentence of
what it shows, both written from the pinned per-clip results of its readout stages (git holds
each readout's metrics and values per clip; `dvc.lock` holds their md5) by the report's own judging
(fourds.report.front, fourds.report.summary).

A row per task: each scale's pretrained headline and the control's at the largest scale, with
their 90% clip-bootstrap intervals (⚠ where a readout is not above its no-learning baseline),
the baseline's headline, and the largest scale's gains over the smallest and over the control
with their paired intervals and verdicts ("better" or "worse" only where the interval excludes
zero, else "level"), to three significant figures as the report writes them.
`python -m fourds.report.glance` prints the tables and sentences of the default study (`runs/`)
and of the shipped reference study (`reports/reference/`); tests/test_readme.py checks the
README's copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fourds.config import StudyLayout
from fourds.config.tasks import TASKS
from fourds.report.compare import gain_text
from fourds.report.front import FrontPage
from fourds.report.numbers import significant
from fourds.report.summary import sentence
from fourds.report.terminal import read_front_page

# the tasks the embedded studies read out (readout.tasks of experiments/readout/embedded.yaml)
EMBEDDED_TASKS = ("depth", "pose", "tracking", "boxes", "classification")


@dataclass(frozen=True)
class Study:
    """A study whose results the README shows: its name there, the folder holding its stage
    outputs (`readout/<scale>-<regime>/`, `pretrain/<scale>/`; fourds.layout), its scales, smallest
    first, the regimes it ran (the report picks the control among them) and the tasks it read
    out."""

    name: str
    runs: Path
    scales: tuple[str, ...]
    regimes: tuple[str, ...] = ("frozen", "initial")
    tasks: tuple[str, ...] = EMBEDDED_TASKS

    @property
    def layout(self) -> StudyLayout:
        return StudyLayout(self.scales, self.tasks, self.regimes)


STUDIES = (
    Study("default", Path("runs"), ("cpu_s", "cpu_l"), ("frozen", "initial")),
    Study(
        "reference",
        Path("reports/reference"),
        ("ref_s", "ref_m", "ref_l"),
        ("frozen", "random_init"),
    ),
)


def front_page(study: Study, root: Path = Path(".")) -> FrontPage:
    """The study's verdicts, as its report judges them."""
    return read_front_page(study.layout, root / study.runs)


def header(study: Study) -> list[str]:
    """The table's column names (the comparison with the smallest scale only where there are
    two or more)."""
    largest, smallest = study.scales[-1], study.scales[0]
    columns = ["task (headline)", *study.scales, f"control at {largest}", "no-learning baseline"]
    if len(study.scales) > 1:
        columns.append(f"{largest} vs {smallest}")
    return [*columns, f"{largest} vs control"]


def rows(study: Study, page: FrontPage) -> list[list[str]]:
    """The table's rows from the study's front page, a cell per column of `header`."""
    largest = study.scales[-1]
    table = []
    for task in study.tasks:
        cells = page.grid[task]
        row = [TASKS[task].title]
        row += [f"{cells[scale].headline}{' ⚠' if cells[scale].flag else ''}" for scale in cells]
        row += [str(cells[largest].control), significant(cells[largest].baseline.value)]
        if len(study.scales) > 1:
            row.append(gain_text(cells[largest].over_smallest))
        row.append(gain_text(cells[largest].over_control))
        table.append(row)
    return table


def markdown(study: Study, page: FrontPage) -> str:
    """The study's table as markdown, as the README holds it."""
    lines = [header(study), ["---"] * len(header(study)), *rows(study, page)]
    return "".join("| " + " | ".join(cells) + " |\n" for cells in lines)


if __name__ == "__main__":
    for study in STUDIES:
        page = front_page(study)  # the table, and under it what the numbers show (the report's)
        print(f"{study.name} ({study.runs}):\n{markdown(study, page)}\n{sentence(page)}\n")
