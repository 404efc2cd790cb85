"""Curating a user's own folder: `curate.data` names it, for the command and the DVC stage."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from fourds.cli import main
from tests.conftest import REPO_ROOT, copy_tracked_files

# the tiny corpus's 12-frame 32x32 videos: 4-frame clips, 12-frame segments, 16x16 pixels
TINY = {"clip_frames": 4, "pretrain_frames": 12, "resolution": 16, "workers": 0}


def sources(manifest: Path) -> set[str]:
    """The source folder of every curated clip (the parent of data/<split>/...)."""
    clips = json.loads(manifest.read_text())["clips"]
    return {str(Path(clip["source"]).parents[1]) for clip in clips}


def test_curate_reads_its_folder_from_the_params(tiny_corpus, tmp_path):
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["curate"].update(TINY, data=str(tiny_corpus))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert main(["curate", "--params", str(path), "--out", str(tmp_path / "curated")]) == 0
    assert sources(tmp_path / "curated" / "manifest.json") == {str(tiny_corpus)}


@pytest.mark.slow
def test_dvc_curates_a_folder_named_by_a_param(tiny_corpus, tmp_path):
    """`dvc exp run -S curate.data=<folder> curate` curates that folder, and the lock records
    its hash as the stage's input."""
    repo = tmp_path / "repo"
    copy_tracked_files(repo, skip=("runs/", "dvc-store/"))
    (repo / "dvc.lock").unlink(missing_ok=True)
    for command in (
        ["git", "init", "-q"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-qm", "init",
         "--allow-empty"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-qm", "fourds"],
    ):  # fmt: skip
        subprocess.run(command, cwd=repo, check=True, capture_output=True)
    overrides = [f"curate.{key}={value}" for key, value in {**TINY, "data": tiny_corpus}.items()]
    run = subprocess.run(
        ["dvc", "exp", "run", *[arg for o in overrides for arg in ("-S", o)], "curate"],
        cwd=repo, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert sources(repo / "runs" / "curate" / "manifest.json") == {str(tiny_corpus)}
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert [dep["path"] for dep in lock["stages"]["curate"]["deps"]][0] == str(tiny_corpus)
