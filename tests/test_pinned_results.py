"""Pinned results: a fresh clone regenerates a committed run and `dvc metrics diff` finds no change.

The repository commits `dvc.lock` and every stage's `metrics.json` (`cache: false` in
dvc.yaml), so the README's compare command reads the pinned numbers from git. Here a small
pinned run (the smoke ladder's curate, pretrain@smoke_s and one readout) is committed in one
repository, cloned, regenerated with `dvc repro --pull` and compared.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import REPO_ROOT, copy_tracked_files, doc_commands, sh

TARGET = "readout@smoke_s-frozen"
READOUT = Path("runs/readout/smoke_s-frozen")
DEPTH = READOUT / "metrics/depth.json"


def test_the_default_s_lock_pins_each_stage_of_its_pipeline_and_no_other():
    """dvc.lock has an entry for each stage dvc.yaml defines on the pinned params and none for
    a stage it no longer defines (DVC keeps those, and every stage it runs reads and writes
    the whole lock)."""
    stages = sh("dvc", "stage", "list", "--name-only", cwd=REPO_ROOT).split()
    lock = yaml.safe_load((REPO_ROOT / "dvc.lock").read_text())
    assert sorted(lock["stages"]) == sorted(stages)


def pinned_repository(root: Path) -> Path:
    """The project's tracked files as a new git repository on the smoke ladder (its depth
    readouts), with the target's pipeline run and its lock and metrics committed."""
    repo = root / "pinned"
    copy_tracked_files(repo, skip=("runs/",))
    (repo / "dvc.lock").unlink(missing_ok=True)  # the default's lock: this repository pins its own
    sh("git", "init", "-q", cwd=repo)
    sh("git", "config", "user.name", "fourds tests", cwd=repo)
    sh("git", "config", "user.email", "tests@fourds.invalid", cwd=repo)
    depth = "readout.tasks=[depth]"
    sh("fourds", "params", "ladder=smoke", depth, "--out", "params.yaml", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "the smoke ladder", cwd=repo)  # DVCLive needs a first commit
    sh("dvc", "pull", "data.dvc", cwd=repo)
    sh("dvc", "repro", TARGET, cwd=repo)
    sh("fourds", "ship", "--out", "reports/smoke", cwd=repo)  # as reports/reference was
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "pin the smoke run", cwd=repo)
    return repo


@pytest.fixture(scope="module")
def pinned(tmp_path_factory) -> Path:
    return pinned_repository(tmp_path_factory.mktemp("pin"))


@pytest.mark.slow
def test_a_fresh_clone_regenerates_the_pinned_metrics_exactly(pinned, tmp_path):
    committed = sh("git", "ls-files", cwd=pinned).split()
    assert "dvc.lock" in committed and str(DEPTH) in committed
    assert "runs/pretrain/smoke_s/checkpoint.pt" not in committed  # outputs stay in DVC's cache

    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(pinned), str(clone), cwd=tmp_path)
    assert not (clone / "runs/pretrain/smoke_s/checkpoint.pt").exists()
    sh("dvc", "repro", "--pull", TARGET, cwd=clone)  # nothing in the remote but the corpus
    assert (clone / "runs/pretrain/smoke_s/checkpoint.pt").is_file()  # it really ran

    for command in doc_commands("Pinned results"):
        assert sh("bash", "-c", command, cwd=clone).strip() == "", command  # no number differs

    # what describes the run rather than its results lives in execution.yaml, which DVC does
    # not hash (the README's `git diff dvc.lock` above printed nothing)
    metrics = json.loads((clone / "runs/pretrain/smoke_s/metrics.json").read_text())
    execution = yaml.safe_load((clone / "runs/pretrain/smoke_s/execution.yaml").read_text())
    assert "train_seconds" not in metrics and execution["train_seconds"] > 0
    readout = yaml.safe_load((clone / READOUT / "execution.yaml").read_text())
    for task in readout["tasks"].values():  # where each task's time went
        parts = [task[f"{part}_seconds"] for part in ("encode", "train", "score")]
        assert all(seconds >= 0 for seconds in parts) and sum(parts) <= task["seconds"]
    assert sum(task["seconds"] for task in readout["tasks"].values()) <= readout["seconds"]

    # the shipped results, compared as the README compares the reference study's
    assert sh("fourds", "compare", "reports/smoke", "--only-regenerated", cwd=clone) == ""

    # and the comparison does report a number that moved
    changed = json.loads((clone / DEPTH).read_text())
    changed["abs_rel"] += 0.01
    (clone / DEPTH).write_text(json.dumps(changed))
    assert "abs_rel" in sh("dvc", "metrics", "diff", cwd=clone)


def another_cpu_path() -> dict[str, str]:
    """Environment variables that give this machine another machine's CPU kernels: ATen's
    vectorised kernels one instruction set down (AVX-512 -> AVX2 -> none), oneDNN and MKL
    kept to AVX2."""
    lower = {"AVX512": "avx2", "AVX2": "default"}
    return {
        "ATEN_CPU_CAPABILITY": lower.get(torch.backends.cpu.get_cpu_capability(), "default"),
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    }


@pytest.mark.slow
def test_another_cpu_kernel_path_regenerates_the_pin_within_the_contract(pinned, tmp_path):
    """The stages that run torch regenerate on the other kernels. Curation runs none (PyAV and
    numpy): the clone takes its outputs from the pinned workspace into its cache, and `dvc
    repro` finds them at dvc.lock's hashes and keeps them (the test above regenerates them)."""
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(pinned), str(clone), cwd=tmp_path)
    sh("dvc", "pull", "data.dvc", cwd=clone)
    shutil.copytree(pinned / "runs/curate", clone / "runs/curate", dirs_exist_ok=True)
    sh("dvc", "commit", "--force", "curate", cwd=clone)  # into the clone's cache, as pulled
    environment = {**os.environ, **another_cpu_path()}
    probe = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    kernels = subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True,
                             text=True, check=True).stdout.strip()  # fmt: skip
    assert kernels != torch.backends.cpu.get_cpu_capability()  # another path really runs
    ran = subprocess.run(["dvc", "repro", "--pull", TARGET], cwd=clone, env=environment,
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    assert "Running stage 'curate'" not in ran and "Running stage 'pretrain@smoke_s'" in ran, ran
    # the contract (reports/tolerances.yaml) holds; the raw view may differ
    assert sh("fourds", "compare", "reports/smoke", "--only-regenerated", cwd=clone) == ""
