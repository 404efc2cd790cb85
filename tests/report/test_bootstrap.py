"""Clip-bootstrap intervals: weighted headlines, paired differences, and the report's tables."""

from __future__ import annotations

import re

import numpy as np
import pytest

from fourds import layout
from fourds.evaluate.readout_files import write_clip_values
from fourds.report.bootstrap import ClipScores, draw_counts, gain_estimate, read_clip_scores
from fourds.report.compare import TaskScores, baseline_rows, control_rows, scale_rows
from fourds.report.fits import fit_scaling
from fourds.report.front import FrontPage
from fourds.report.lineage import link


def test_the_headline_is_the_weighted_mean_and_every_draw_resamples_all_clips():
    scores = ClipScores(np.array([0.2, np.nan, 0.6]), np.array([1.0, 0.0, 3.0]))
    assert scores.headline() == pytest.approx(0.5)
    counts = draw_counts(3, samples=500, seed=1)
    assert counts.shape == (500, 3) and np.all(counts.sum(axis=1) == 3)
    assert scores.headline(np.ones((1, 3)))[0] == pytest.approx(0.5)
    draws = scores.headline(counts)
    assert np.nanmin(draws) == pytest.approx(0.2) and np.nanmax(draws) == pytest.approx(0.6)


def test_a_paired_difference_sees_an_effect_that_clip_noise_hides():
    """Two readouts whose clips differ wildly but which differ by 0.01 on every clip."""
    rng = np.random.default_rng(0)
    clips = rng.uniform(0.1, 0.9, size=40)
    better, worse = (ClipScores(v, np.ones(40)) for v in (clips + 0.01, clips))
    counts = draw_counts(40, samples=1000)
    gain = gain_estimate(better, worse, counts, higher_is_better=True)
    assert gain.value == pytest.approx(0.01) and gain.excludes_zero
    assert gain.high - gain.low < 1e-9  # the shared clip variance cancels exactly
    lower_is_better = gain_estimate(better, worse, counts, higher_is_better=False)
    assert lower_is_better.value == pytest.approx(-0.01) and lower_is_better.high < 0
    assert better.headline(counts).std() > 0.02  # each headline alone is noisier than the gain


def write_readouts(
    root,
    values: dict[tuple[str, str], np.ndarray],
    task: str = "boxes",
    baseline: np.ndarray | None = None,
):
    """The values per clip of each (scale, regime) readout in the study folder `root`: its
    per-clip mIoU and the no-learning baseline's on the same clips (`baseline`, else 0.1 on
    every clip)."""
    for (scale, regime), clip_values in values.items():
        path = layout.ReadoutFiles.of(scale, task, regime).at(root).clips
        path.parent.mkdir(parents=True)
        clips = {"miou": clip_values, "weight": np.ones(len(clip_values))}
        base = np.full(len(clip_values), 0.1) if baseline is None else baseline
        write_clip_values(path, [clips], {"miou": base}, "miou")


def test_report_tables_say_which_differences_are_outside_the_noise(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, size=30)
    noise = rng.normal(0, 0.2, size=30)
    noise -= noise.mean()
    write_readouts(
        tmp_path,
        {
            ("s", "frozen"): base + 0.05,
            ("s", "random_init"): base,
            ("l", "frozen"): base + 0.05 + noise,  # as good on average, much noisier
            ("l", "random_init"): base,
        },
    )
    scores = TaskScores.read(tmp_path, ["s", "l"], "boxes", ["frozen", "random_init"], "miou", True)
    assert scores.estimate("s", "frozen").value == pytest.approx(np.mean(base) + 0.05)
    control = control_rows(scores, ["s", "l"], "random_init")
    assert control[0]["verdict"] == "better, outside the noise"
    # beside the headlines, each linked to the lineage of the stage that scored it
    assert control[0]["baseline"] == link("0.100 [0.100, 0.100]", "readout@s-frozen")
    assert control[1]["control"].startswith('<a href="#lineage-readout-l-random_init">')
    assert control[1]["verdict"] == "within the noise"
    (comparison,) = scale_rows(scores, ["s", "l"])
    assert comparison["comparison"] == (
        f"{link('l', 'readout@l-frozen')} vs {link('s', 'readout@s-frozen')}"
    )
    assert comparison["verdict"] == "within the noise"
    assert read_clip_scores(tmp_path / "readout/s-frozen/clips/boxes.csv", "miou").values[0, 0] == (
        pytest.approx(base[0] + 0.05)
    )


def test_a_non_finite_clip_value_is_left_out_and_counted_never_averaged_as_a_number(tmp_path):
    """A clip whose AbsRel came out NaN or infinite (a failed computation, weighted) is not
    a perfect or an infinite clip: it leaves the headline and the intervals, and is counted."""
    values = np.array([0.2, np.nan, 0.4, np.inf])
    write_readouts(tmp_path, {("s", "frozen"): values, ("l", "frozen"): np.full(4, 0.3)})
    scores = read_clip_scores(tmp_path / "readout/s-frozen/clips/boxes.csv", "miou")
    assert scores.failed == 2 and scores.headline() == pytest.approx(0.3)
    task = TaskScores.read(tmp_path, ["s", "l"], "boxes", ["frozen"], "miou", True)
    estimate = task.estimate("s", "frozen")
    assert np.isfinite([estimate.value, estimate.low, estimate.high]).all()
    assert 0.2 <= estimate.low <= estimate.high <= 0.4
    page = FrontPage.of({"boxes": task}, ["s", "l"], "frozen", {"s": 0.3, "l": 0.2})
    assert page.failed == {"boxes in readout@s-frozen": 2}  # the answer says it (test_front.py)


def test_readouts_of_different_test_sets_are_not_compared(tmp_path):
    write_readouts(tmp_path, {("s", "frozen"): np.ones(3), ("l", "frozen"): np.ones(4)})
    with pytest.raises(ValueError, match="different test sets"):
        TaskScores.read(tmp_path, ["s", "l"], "boxes", ["frozen"], "miou", True)


def test_clip_draws_widen_the_scaling_band():
    x = np.array([1e3, 1e4, 1e5])
    y = 0.5 * x**-0.1
    rng = np.random.default_rng(0)
    y_draws = y * np.exp(rng.normal(0, 0.1, size=(500, 3)))
    scales_only = fit_scaling(x, y, higher_is_better=False, samples=500)
    with_clips = fit_scaling(x, y, higher_is_better=False, samples=500, y_draws=y_draws)
    assert np.all(with_clips.upper - with_clips.lower >= scales_only.upper - scales_only.lower)
    assert with_clips.law == scales_only.law


def test_three_scales_are_compared_each_with_the_next_and_the_largest_with_the_smallest(
    tmp_path,
):
    base = np.random.default_rng(1).uniform(0.2, 0.6, size=30)
    gains = {"s": 0.0, "m": 0.1, "l": 0.1}
    write_readouts(tmp_path, {(scale, "frozen"): base + gain for scale, gain in gains.items()})
    scores = TaskScores.read(tmp_path, list(gains), "boxes", ["frozen"], "miou", True)
    rows = {
        re.sub("<[^>]+>", "", row["comparison"]): row["verdict"]
        for row in scale_rows(scores, list(gains))
    }
    assert list(rows) == ["m vs s", "l vs m", "l vs s"]
    assert rows["m vs s"] == rows["l vs s"] == "better, outside the noise"
    assert rows["l vs m"] == "within the noise"


def test_each_readout_is_compared_with_its_baseline_on_the_same_clips(tmp_path):
    """The baseline's clips vary wildly; the readout beats it by 0.02 on every clip."""
    baseline = np.random.default_rng(2).uniform(0.1, 0.9, size=40)
    write_readouts(
        tmp_path,
        {("s", "frozen"): baseline + 0.02, ("s", "random_init"): baseline[::-1].copy()},
        baseline=baseline,
    )
    scores = TaskScores.read(tmp_path, ["s"], "boxes", ["frozen", "random_init"], "miou", True)
    assert scores.baseline("s", "frozen").value == pytest.approx(baseline.mean())
    gain = scores.over_baseline("s", "frozen")
    assert gain.value == pytest.approx(0.02) and gain.high - gain.low < 1e-9  # paired
    assert scores.over_baseline("s", "random_init").value == pytest.approx(0)
    rows = baseline_rows(scores, ["s"], ["frozen", "random_init"])
    assert [row["verdict"] for row in rows] == ["better, outside the noise", "within the noise"]
    assert rows[0]["gain over the baseline"] == "+0.0200 [+0.0200, +0.0200]"
    lower_is_better = TaskScores.read(tmp_path, ["s"], "boxes", ["frozen"], "miou", False)
    assert lower_is_better.over_baseline("s", "frozen").high < 0  # worse when lower is better


def interval_coverage(seeds: int, seed_spread: float, replications: int = 300) -> float:
    """How often the 90% interval of the gain of one readout over another covers the true gain
    (0): 60 clips shared by both (their clip effects cancel in the paired difference), each
    readout trained with `seeds` seeds whose results shift by N(0, seed_spread), plus
    independent per-clip noise N(0, 0.02)."""
    rng = np.random.default_rng(1)
    counts = draw_counts(60, 1000, 0)
    covered = 0
    for _ in range(replications):
        clips = rng.normal(0, 0.3, 60)
        a, b = (
            clips + rng.normal(0, seed_spread, (seeds, 1)) + rng.normal(0, 0.02, (seeds, 60))
            for _ in range(2)
        )
        gain = gain_estimate(ClipScores(a, np.ones_like(a)), ClipScores(b, np.ones_like(b)),
                             counts, True)  # fmt: skip
        covered += not gain.excludes_zero
    return covered / replications


def test_intervals_over_seeds_cover_a_known_gain_that_clip_draws_alone_miss():
    assert interval_coverage(seeds=3, seed_spread=0.05) >= 0.9
    assert interval_coverage(seeds=5, seed_spread=0.05) >= 0.88
    # one seed: the interval knows only the clips, and the seeds' spread makes it miss
    assert interval_coverage(seeds=1, seed_spread=0.05) < 0.3
    # without seed noise the seeds cost little width: a real effect is still seen
    better = ClipScores(np.linspace(0.5, 0.6, 3)[:, None] + np.zeros((3, 60)), np.ones((3, 60)))
    worse = ClipScores(np.full((3, 60), 0.4), np.ones((3, 60)))
    assert gain_estimate(better, worse, draw_counts(60, 1000, 0), True).excludes_zero


def test_clips_csv_with_a_seed_column_is_read_by_seed(tmp_path):
    path = tmp_path / "clips.csv"
    rows = ["seed,clip,weight,miou", "0,0,1,0.5", "0,1,1,0.7", "1,0,1,0.4", "1,1,1,0.6"]
    path.write_text("\n".join(rows) + "\n")
    scores = read_clip_scores(path, "miou")
    assert scores.values.tolist() == [[0.5, 0.7], [0.4, 0.6]]
    assert scores.seed_headlines().tolist() == pytest.approx([0.6, 0.5])
    assert scores.headline() == pytest.approx(0.55)
