"""The report's answer as plain text, for a terminal (`fourds answer`).

The same FrontPage (fourds.report.front) and sentence (fourds.report.summary) the report opens
with, read from a runs folder or a shipped study (`reports/reference`, whose stage folders are
laid out as runs/ is), and printed as one small table per task: each scale's pretrained
readout with its 90% clip-bootstrap interval, then its gains over the task's no-learning
baseline, the control and the smallest scale, each with its verdict.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from fourds import layout
from fourds.config import StudyLayout
from fourds.config.regimes import PRETRAINED
from fourds.config.tasks import TASKS
from fourds.report.compare import TaskScores, gain_text
from fourds.report.front import FrontPage
from fourds.report.scaling import pretraining_losses
from fourds.report.summary import sentence

REFERENCE = Path("reports/reference")  # the shipped reference study (`fourds ship`)


def missing_results(study: StudyLayout, runs: Path) -> list[Path]:
    """The files `read_front_page` reads that `runs` does not hold (a fresh clone's runs/ holds
    the pinned metrics.json files, but not the per-clip results DVC caches)."""
    needed = [
        layout.ReadoutFiles.in_study(runs, scale, task, regime).clips
        for task in study.tasks
        for scale in study.scales
        for regime in study.regimes
    ]
    needed += [runs / layout.pretrain(scale).folder / "metrics.json" for scale in study.scales]
    return [path for path in needed if not path.is_file()]


def as_committed(study: StudyLayout, runs: Path) -> bool:
    """Whether `runs` holds only the results git keeps (a clone's: metrics.json and clips.csv,
    no stage's run record, which DVC caches), not a run made here."""
    stages = [runs / layout.pretrain(scale).folder for scale in study.scales]
    return not any((stage / "run.yaml").is_file() for stage in stages)


def read_front_page(study: StudyLayout, runs: Path) -> FrontPage:
    """The front page of `study`, from its stage folders under `runs`
    (each readout's values per clip, pretrain/<scale>/metrics.json; fourds.layout)."""
    scales, regimes = list(study.scales), list(study.regimes)
    scores = {
        task: TaskScores.read(
            runs,
            scales,
            task,
            regimes,
            TASKS[task].headline,
            TASKS[task].higher_is_better,
        )
        for task in study.tasks
    }
    losses, loss_name = pretraining_losses(scales, runs)
    regime = PRETRAINED if PRETRAINED in regimes else regimes[0]
    return FrontPage.of(scores, scales, regime, losses, loss_name)


def answer_text(page: FrontPage) -> str:
    """The sentence (wrapped at 100 columns), then a table per task (a row per scale; the
    column against the smallest scale only where there are two or more), as plain text."""
    parts = [textwrap.fill(sentence(page), width=100)]
    for task in page.tasks:
        cells = page.grid[task]
        baselines = " / ".join(dict.fromkeys(str(cell.baseline) for cell in cells.values()))
        title = f"{TASKS[task].title}; no-learning baseline ({TASKS[task].baseline}): {baselines}"
        rows = [["scale", page.regime, "vs baseline"]]
        if page.control:
            rows[0].append("vs control")
        if len(page.scales) > 1:
            rows[0].append(f"vs {page.scales[0]}")
        for scale, cell in cells.items():
            flag = " ⚠" if cell.flag else ""
            row = [scale, f"{cell.headline}{flag}", gain_text(cell.over_baseline)]
            if page.control:
                row.append(gain_text(cell.over_control))
            if len(page.scales) > 1:
                row.append(gain_text(cell.over_smallest))
            rows.append(row)
        parts.append(f"{title}\n{_table(rows)}")
    return "\n\n".join(parts) + "\n"


def _table(rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart, indented by two."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  "
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
