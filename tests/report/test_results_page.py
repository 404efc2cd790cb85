"""docs/results.md's verdicts are the report's (fourds.report.front) on the pinned results of
each study: where pretraining beats the control at every scale, how many readouts are above
their no-learning baseline, and where the largest scale beats the smallest. A re-pin that
moves a verdict fails here with the sentence to write."""

from __future__ import annotations

import re

import pytest

from fourds.report.compare import BETTER
from fourds.report.glance import STUDIES, Study, front_page
from fourds.report.summary import listing
from tests.conftest import REPO_ROOT

PAGE = re.sub(r"\s+", " ", (REPO_ROOT / "docs/results.md").read_text())


def verdicts(study: Study) -> list[str]:
    """The page's verdict phrases on `study`, as the report's judging writes them."""
    page = front_page(study, REPO_ROOT)
    largest, smallest = page.scales[-1], page.scales[0]

    def tasks(comparison: str, scale: str) -> str:
        return listing(page.by_direction(comparison, scale)[BETTER]) or "no task"

    control = ", ".join(f"at `{scale}` on {tasks('over_control', scale)}" for scale in page.scales)
    readouts = len(page.tasks) * len(page.scales)
    above = readouts - len(page.flagged())
    return [
        f"better outside the noise {control}",
        f"{above} of {readouts} readouts above theirs",
        f"`{largest}` beats `{smallest}` on {tasks('over_smallest', largest)}",
    ]


@pytest.mark.parametrize("study", STUDIES, ids=lambda study: study.name)
def test_the_results_page_says_the_reports_verdicts(study):
    missing = [phrase for phrase in verdicts(study) if phrase not in PAGE]
    assert not missing, f"docs/results.md, {study.name} study: write {missing}"


def test_no_study_shows_the_largest_scale_beating_the_smallest():
    """The page's "0 of 5 in both studies"."""
    assert "(0 of 5 in both studies)" in PAGE
    for study in STUDIES:
        page = front_page(study, REPO_ROOT)
        assert not page.by_direction("over_smallest", page.scales[-1])[BETTER]
