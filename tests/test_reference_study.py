"""The reference study shipped in reports/reference: complete, and regenerable from its shipped
weights with the README's commands."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from fourds.shipped import RESULTS, compare
from tests.conftest import REPO_ROOT, copy_tracked_files, doc_commands, sh

SHIPPED = Path("reports/reference")
SECTION = "The reference study"


def shipped_params() -> dict:
    return yaml.safe_load((REPO_ROOT / SHIPPED / "params.yaml").read_text())


def test_every_stage_of_the_reference_ladder_is_shipped_with_its_lock_entry():
    params = shipped_params()
    scales, tasks = params["ladder"]["scales"], params["readout"]["tasks"]
    assert params["ladder"]["name"] == "reference" and scales == ["ref_s", "ref_m", "ref_l"]
    lock = yaml.safe_load((REPO_ROOT / SHIPPED / "dvc.lock").read_text())["stages"]
    stages = ["curate"] + [f"pretrain/{scale}" for scale in scales]
    stages += [f"fidelity/{scale}" for scale in scales]
    stages += [
        f"readout/{scale}-{task}-{regime}"
        for scale in scales
        for task in tasks
        for regime in params["readout"]["regimes"]
    ]
    for stage in stages:
        assert (REPO_ROOT / SHIPPED / stage / "metrics.json").is_file(), stage
        assert stage.replace("/", "@", 1) in lock or stage == "curate", stage
        if stage.startswith("readout/"):  # per-clip values, the report's bootstrap reads them
            assert (REPO_ROOT / SHIPPED / stage / "clips.csv").stat().st_size > 0, stage
    checkpoints = yaml.safe_load((REPO_ROOT / SHIPPED / "checkpoints.dvc").read_text())
    assert checkpoints["outs"][0]["nfiles"] == len(scales)
    assert (REPO_ROOT / SHIPPED / "report/scaling.html").is_file()


def test_the_shipped_study_compared_with_itself_has_no_difference():
    assert compare(REPO_ROOT / SHIPPED, REPO_ROOT / SHIPPED) == []
    assert sorted(RESULTS) == ["clips.csv", "metrics.json"]


@pytest.mark.slow
def test_the_readme_regenerates_a_readout_from_the_shipped_weights(tmp_path):
    """docs/reproducibility.md, "The reference study", second block: in a copy of the
    repository, pull the corpus and the shipped weights, curate, read `ref_s` out on boxes (the
    cheapest task), and compare: curation and the readout give the shipped numbers within the
    block's tolerance (on the 2-core Xeon the readout's differ in the seventh digit)."""
    repo = tmp_path / "repo"
    copy_tracked_files(repo, skip=("runs/",))
    sh("git", "init", "-q", cwd=repo)
    commands = doc_commands(SECTION, 1)
    for command in commands[:-1]:
        sh("bash", "-c", command, cwd=repo)
    assert sh("bash", "-c", commands[-1], cwd=repo) == ""  # no number differs
    regenerated = repo / "regenerated/readout/ref_s-frozen/metrics/boxes.json"
    assert json.loads(regenerated.read_text())["scale"] == "ref_s"  # it really ran
    # and a number that moved is reported
    curated = repo / "regenerated/curate/metrics.json"
    curated.write_text(curated.read_text().replace("{", '{"moved": 1, ', 1))
    moved = subprocess.run(["bash", "-c", commands[-1]], cwd=repo, capture_output=True, text=True)
    assert moved.returncode == 1 and "moved" in moved.stdout
