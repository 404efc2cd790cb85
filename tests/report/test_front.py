"""The front page: the verdict grid, its flags, and the sentence and summary lines made from it."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from fourds.report.bootstrap import ClipScores, draw_counts
from fourds.report.compare import BETTER, LEVEL, WORSE, TaskScores
from fourds.report.front import FrontPage, grid_rows
from fourds.report.lineage import link
from fourds.report.summary import (
    control_line,
    flag_note,
    interval_note,
    listing,
    scale_line,
    sentence,
)

SCALES = ["s", "m", "l"]
CLIPS = 40
BASE = np.random.default_rng(0).uniform(0.2, 0.6, size=CLIPS)
NOISE = np.random.default_rng(1).normal(0, 0.2, size=CLIPS)
NOISE -= NOISE.mean()  # as good as the baseline on average, far noisier than any gap


def task_scores(
    task: str, higher_is_better: bool, frozen: dict, control: dict | None
) -> TaskScores:
    """Per-clip scores of `task` (baseline BASE on every stage's clips) from per-scale clip
    values of the pretrained readouts and, when given, of the random-network control."""
    regimes = {"frozen": frozen, **({"random_init": control} if control else {})}
    scores = {
        (scale, regime): ClipScores(values, np.ones(CLIPS))
        for regime, per_scale in regimes.items()
        for scale, values in per_scale.items()
    }
    baselines = {stage: ClipScores(BASE, np.ones(CLIPS)) for stage in scores}
    metric = "miou" if higher_is_better else "end_point_error"
    return TaskScores(task, metric, higher_is_better, scores, baselines, draw_counts(CLIPS, 500))


def study(control: bool = True, losses=(0.3, 0.2, 0.1)) -> FrontPage:
    """boxes: pretraining, and scale, help everywhere; pose (lower is better): the small
    scale beats its baseline, the middle one is level with it, the large one is worse, and
    the control beats the baseline by 0.02 at every scale."""
    boxes = task_scores(
        "boxes",
        True,
        {"s": BASE + 0.05, "m": BASE + 0.06, "l": BASE + 0.1},
        {scale: BASE for scale in SCALES} if control else None,
    )
    pose = task_scores(
        "pose",
        False,
        {"s": BASE - 0.05, "m": BASE + NOISE, "l": BASE + 0.05},
        {scale: BASE - 0.02 for scale in SCALES} if control else None,
    )
    return FrontPage.of(
        {"boxes": boxes, "pose": pose}, SCALES, "frozen", dict(zip(SCALES, losses, strict=True))
    )


def test_each_cell_compares_the_readout_with_its_baseline_the_control_and_the_smallest_scale():
    page = study()
    cell = page.grid["boxes"]["l"]
    assert cell.headline.value == pytest.approx(BASE.mean() + 0.1)
    assert cell.baseline.value == pytest.approx(BASE.mean())
    assert cell.over_baseline.value == pytest.approx(0.1)
    assert cell.over_control.value == pytest.approx(0.1)
    assert cell.over_smallest.value == pytest.approx(0.05)
    assert page.grid["boxes"]["s"].over_smallest is None
    assert page.grid["pose"]["s"].over_baseline.value == pytest.approx(0.05)  # lower is better
    assert page.by_direction("over_control", "l") == {BETTER: ["boxes"], WORSE: ["pose"], LEVEL: []}
    assert page.by_direction("over_baseline", "m") == {
        BETTER: ["boxes"],
        WORSE: [],
        LEVEL: ["pose"],
    }
    without = study(control=False)
    assert not without.control and without.grid["boxes"]["l"].over_control is None


def test_readouts_not_above_their_baseline_are_flagged():
    page = study()
    assert page.flagged() == [
        ("pose", "m", "level with its baseline"),
        ("pose", "l", "below its baseline"),
    ]
    assert flag_note(page) == (
        "Flagged ⚠ here: pose: m level with its baseline; pose: l below its baseline."
    )


def test_the_grid_has_a_row_per_task_with_the_baseline_beside_the_scales():
    rows = grid_rows(study())
    assert [list(row) for row in rows] == [["task", "no-learning baseline", *SCALES]] * 2
    boxes, pose = rows
    assert boxes["no-learning baseline"].startswith(f"{BASE.mean():.3f} [")  # one value
    assert "first-frame box" in boxes["no-learning baseline"]
    text = {scale: re.sub("<a [^>]+>|</a>", "", cell) for scale, cell in boxes.items()}
    assert "vs s:" not in text["s"] and "vs s: better +0.0500 [+0.0500, +0.0500]" in text["l"]
    assert "vs baseline: better" in text["l"] and "vs control: better" in text["l"]
    assert "⚠ below its baseline" in pose["l"] and "⚠" not in pose["s"]
    assert pose["m"].split("<br>")[1].startswith("vs baseline: level ")
    # the headline links to its readout stage's lineage, each comparison to the other stage's
    headline, *_ = boxes["l"].split("<br>")
    assert headline.startswith(
        link(f"**{study().grid['boxes']['l'].headline}**", "readout@l-frozen")
    )
    assert link("vs control", "readout@l-random_init") in boxes["l"]
    assert link("vs s", "readout@s-frozen") in boxes["l"]


def test_the_sentence_says_what_the_numbers_show_and_what_they_do_not():
    assert sentence(study()) == (
        "At the largest scale (l) pretraining beats the random-network control on 1 of 2 tasks "
        "(boxes) and loses on 1 (pose); l beats s on 1 of 2 tasks (boxes) and loses on 1 "
        "(pose); whether the held-out MAE loss falls with scale cannot be told from one "
        "pretraining seed a scale (0.300 at s, 0.100 at l); 2 of 6 pretrained "
        "readouts are not above their no-learning baseline (flagged ⚠); so the study shows a "
        "gain from both pretraining and scale on boxes, and does not show one on pose."
    )
    unflagged = study()
    object.__setattr__(unflagged, "flagged", lambda: [])  # every readout above its baseline
    assert "; all 6 pretrained readouts are above their no-learning baseline; " in sentence(
        unflagged
    )
    failed = study()
    object.__setattr__(failed, "failed", {"boxes in readout@l-frozen": 2})
    assert (
        "; 2 per-clip values were not finite and are left out of their headlines and intervals: "
        "boxes in readout@l-frozen (2); "
    ) in sentence(failed)
    without = sentence(study(control=False, losses=(0.1, 0.2, 0.15)))
    assert without.startswith("L beats s on 1 of 2 tasks (boxes)")
    assert "cannot be told from one pretraining seed a scale (0.100 at s, 0.150 at l)" in without
    assert without.endswith(
        "so the study shows a gain from scale on boxes, and does not show one on pose."
    )


def test_a_gain_is_shown_only_above_the_no_learning_baseline():
    """Pose beats the control at l here, but its readout stays below its no-learning baseline
    (flagged): the win is counted, and no gain from pretraining is shown on it."""
    page = study()
    by_direction = page.by_direction

    def pose_beats_the_control(comparison: str, scale: str) -> dict[str, list[str]]:
        groups = {
            direction: list(tasks) for direction, tasks in by_direction(comparison, scale).items()
        }
        if comparison == "over_control":
            groups = {
                direction: [t for t in tasks if t != "pose"] for direction, tasks in groups.items()
            }
            groups[BETTER] = ["boxes", "pose"]
        return groups

    object.__setattr__(page, "by_direction", pose_beats_the_control)
    text = sentence(page)
    assert "pretraining beats the random-network control on 2 of 2 tasks (boxes, pose);" in text
    assert text.endswith(
        "so the study shows a gain from both pretraining and scale on boxes, and does not show "
        "one on pose."
    )


def test_a_study_without_any_gain_says_so():
    boxes = task_scores("boxes", True, {"s": BASE, "l": BASE}, {"s": BASE, "l": BASE})
    page = FrontPage.of({"boxes": boxes}, ["s", "l"], "frozen", {"s": 0.1, "l": 0.1})
    assert sentence(page).endswith(
        "so the study does not show a gain from pretraining or scale on any task."
    )
    assert control_line(page).startswith(
        "**Pretraining beats the random-network control outside the noise at the largest scale (l) "
        "on: no task**"
    )


def test_the_summary_lines_judge_the_largest_scale_like_the_grid():
    """They count the verdicts at the largest scale, as the grid and the sentence do, and say
    where pretraining wins at every scale (pose beats the control at s only: in neither)."""
    page = study()
    assert control_line(page) == (
        "**Pretraining beats the random-network control outside the noise at the largest scale (l) "
        "on: boxes** (1 of 2 tasks; at every scale on: boxes)."
    )
    assert scale_line(page) == (
        "**The largest scale beats the smallest outside the noise on: boxes** (1 of 2 tasks; "
        "worse on: pose)."
    )


def test_a_study_of_one_scale_says_it_compares_no_scales_and_fits_no_law():
    """A user may pretrain one scale (`ladder.scales=[...]` of one): the front page shows its
    readouts against the baseline and the control, and says there is no scaling to show."""
    boxes = task_scores("boxes", True, {"l": BASE + 0.1}, {"l": BASE})
    page = FrontPage.of({"boxes": boxes}, ["l"], "frozen", {"l": 0.1})
    assert page.grid["boxes"]["l"].over_smallest is None
    no_scaling = (
        "with one scale (l) there is no scale comparison and no scaling fit: both need two or "
        "more scales in ladder.scales"
    )
    assert sentence(page) == (
        "At the largest scale (l) pretraining beats the random-network control on 1 of 1 tasks "
        f"(boxes); {no_scaling}; all 1 pretrained readouts are above their no-learning "
        "baseline; so the study shows a gain from pretraining on boxes."
    )
    assert scale_line(page) == f"**W{no_scaling[1:]}.**"
    (row,) = grid_rows(page)
    text = re.sub("<a [^>]+>|</a>", "", row["l"])
    assert "vs l:" not in text and "vs control: better" in text


def test_lists_are_written_as_prose():
    assert listing([]) == "" and listing(["a"]) == "a"
    assert listing(["a", "b"]) == "a and b" and listing(["a", "b", "c"], "or") == "a, b or c"


def test_the_interval_note_says_which_readouts_count_their_training_noise():
    one = task_scores("boxes", True, {"s": BASE}, {"s": BASE})
    three = dataclasses.replace(
        one,
        scores={
            stage: ClipScores(np.stack([BASE] * 3), np.ones((3, CLIPS))) for stage in one.scores
        },
    )
    assert "every readout trained one seed" in interval_note({"boxes": one, "pose": one})
    mixed = interval_note({"boxes": three, "pose": one})
    assert "(boxes: 3 seeds); pose trained one seed, counted by its clips only" in mixed
    assert "every readout's training noise over its seeds (boxes and pose: 3 seeds)" in (
        interval_note({"boxes": three, "pose": three})
    )
