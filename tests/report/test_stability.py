"""A regeneration keeps its study's verdicts: each front-page comparison moves by at most a
quarter of its pinned interval's half-width (fourds.report.stability, `fourds compare`)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from fourds.cli import main
from fourds.config import load_params
from fourds.report.front import FrontPage
from fourds.report.stability import moved_verdicts, verdict_shifts
from tests.conftest import REPO_ROOT
from tests.report.test_front import BASE, NOISE, SCALES, task_scores
from tests.report.test_terminal import write_runs


def boxes_study(large_scale_gain: float) -> FrontPage:
    """boxes (higher is better) at three scales over a noisy control; `large_scale_gain` is
    how far the largest scale's pretrained readout lies above the baseline."""
    frozen = {"s": BASE + 0.05 + NOISE, "m": BASE + 0.06 + np.roll(NOISE, 7)}
    frozen["l"] = BASE + large_scale_gain + np.roll(NOISE, 13)
    boxes = task_scores("boxes", True, frozen, {scale: BASE + NOISE[::-1] for scale in SCALES})
    return FrontPage.of({"boxes": boxes}, SCALES, "frozen", dict.fromkeys(SCALES, 0.1))


def test_a_comparison_may_move_a_quarter_of_its_interval_and_no_more():
    pinned = boxes_study(0.1)
    shifts = verdict_shifts(pinned, pinned)
    assert len(shifts) == 3 * 2 + 2  # baseline and control at every scale, smallest at m and l
    assert {shift.relative for shift in shifts} == {0.0}
    cell = pinned.grid["boxes"]["l"].over_baseline
    half_width = (cell.high - cell.low) / 2
    assert moved_verdicts(pinned, boxes_study(0.1 + 0.2 * half_width)) == []
    moved = moved_verdicts(pinned, boxes_study(0.1 + 0.3 * half_width))
    assert {(shift.scale, shift.comparison) for shift in moved} >= {("l", "vs baseline")}
    assert all(shift.scale == "l" and shift.relative > 0.25 for shift in moved)


def test_pages_of_different_studies_are_not_compared():
    with pytest.raises(ValueError, match="the regeneration reads out"):
        verdict_shifts(boxes_study(0.1), FrontPage.of({}, SCALES, "frozen", {}))


def test_compare_with_a_git_revision_checks_the_pins_numbers_and_verdicts(
    tmp_path, monkeypatch, capsys
):
    params = load_params(REPO_ROOT / "params.yaml")
    shutil.copy(REPO_ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    write_runs(tmp_path / "runs", params, gain=0.02, noise=0.05)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "pin"], check=True)
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "HEAD"]) == 0  # the commit's own results: said in one line
    assert "holds no result regenerated here" in capsys.readouterr().out
    (tmp_path / "runs/pretrain/cpu_s/execution.yaml").write_text("seconds: 1\n")  # ran here
    assert main(["compare", "HEAD"]) == 0
    assert capsys.readouterr().out == ""

    shutil.rmtree(tmp_path / "runs")
    shifted = {("cpu_l", "depth", "frozen"): 0.008}  # within 0.01 of every number
    write_runs(tmp_path / "runs", params, gain=0.02, noise=0.05, shifted=shifted)
    assert main(["compare", "HEAD", "--tolerance", "0.01"]) == 1
    out = capsys.readouterr().out
    assert "report (verdicts)" in out and "depth at cpu_l vs baseline" in out
    assert "readout/" not in out  # every number within the tolerance: only verdicts moved

    assert main(["compare", "HEAD~1"]) == 2  # no such revision: one line
    assert "neither a folder of shipped results nor a git revision" in capsys.readouterr().err
