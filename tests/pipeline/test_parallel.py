"""`fourds repro-parallel` (fourds.pipeline.parallel) on a small DVC pipeline: stages run in
copies of the repository as their inputs are ready, a failed stage's downstream does not run, a
past deadline runs nothing and stops a stage that outlives it, and the repository's own `dvc
repro` takes the stages that ran from DVC's run cache."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

COMMAND = [sys.executable, "-m", "fourds.cli", "repro-parallel"]
PIPELINE = """\
stages:
  first:
    cmd: sh -c 'cat seed.txt > first.txt'
    deps:
      - seed.txt
    outs:
      - first.txt
  copy:
    foreach: [1, 2]
    do:
      cmd: sh -c 'cat first.txt > copy${item}.txt'
      deps:
        - first.txt
      outs:
        - copy${item}.txt
  broken:
    cmd: sh -c 'exit 3'
    deps:
      - first.txt
    outs:
      - broken.txt
  after_broken:
    cmd: sh -c 'cat broken.txt > after.txt'
    deps:
      - broken.txt
    outs:
      - after.txt
"""


SLOW = """\
stages:
  slow:
    cmd: sh -c 'sleep 60 & echo $! > {pid}; wait'
    outs:
      - never.txt
"""


def run(command: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def pipeline(tmp_path, stages: str = PIPELINE):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "dvc.yaml").write_text(stages)
    (repo / "seed.txt").write_text("seed\n")
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        run(command, repo).check_returncode()
    run(["git", "add", "-A"], repo).check_returncode()
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "p"], repo)
    return repo


def test_no_repository_and_a_pattern_of_no_stage_are_refused_in_one_line(tmp_path):
    outside = run([*COMMAND, "first"], tmp_path)
    assert outside.returncode == 2 and "is in no DVC repository" in outside.stderr
    assert len(outside.stderr.strip().splitlines()) == 1, outside.stderr
    repo = pipeline(tmp_path)
    typo = run([*COMMAND, "--logs", str(tmp_path / "logs"), "frist"], repo)
    assert typo.returncode == 2 and len(typo.stderr.strip().splitlines()) == 1, typo.stderr
    assert "'frist' matches no stage of the pipeline (after_broken, broken, copy" in typo.stderr
    assert not (tmp_path / "logs").exists() and not list(tmp_path.glob("repo.workers.*"))


def test_stages_run_when_ready_and_the_repository_restores_them(tmp_path):
    repo = pipeline(tmp_path)
    logs = tmp_path / "logs"
    result = run([*COMMAND, "--jobs", "2", "--logs", str(logs), "*"], repo)
    assert result.returncode == 1 and "failed: broken after_broken" in result.stderr
    records = json.loads((logs / "parallel_repro.json").read_text())["stages"]
    assert records["broken"]["status"] not in (0, "upstream failed")  # dvc repro failed
    assert records["after_broken"]["status"] == "upstream failed"
    ran = (logs / "ran").read_text().split()
    assert ran == ["first", "copy@1", "copy@2"]
    assert not (repo / "first.txt").exists()  # the workers ran them, not the repository
    restored = run(["dvc", "repro", *ran], repo)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert restored.stdout.count("is cached - skipping run") == 3
    assert (repo / "copy2.txt").read_text() == "seed\n"


def test_a_past_deadline_runs_nothing(tmp_path):
    repo = pipeline(tmp_path)
    logs = tmp_path / "logs"
    result = run([*COMMAND, "--deadline", "1", "--logs", str(logs), "copy"], repo)
    assert result.returncode == 1 and (logs / "ran").read_text() == ""
    records = json.loads((logs / "parallel_repro.json").read_text())["stages"]
    assert {record["status"] for record in records.values()} == {"no time left"}


def test_a_stage_past_the_deadline_is_stopped_with_what_it_started(tmp_path):
    pid_file = tmp_path / "sleeper.pid"
    repo = pipeline(tmp_path, SLOW.format(pid=pid_file))
    logs = tmp_path / "logs"
    deadline = str(time.time() + 10)
    result = run([*COMMAND, "--deadline", deadline, "--logs", str(logs), "slow"], repo)
    assert result.returncode == 1
    assert json.loads((logs / "parallel_repro.json").read_text())["stages"]["slow"]["status"] == (
        "timed out"
    )
    sleeper = Path(f"/proc/{int(pid_file.read_text())}/status")  # the stage's own child
    assert not sleeper.exists() or "\tZ" in sleeper.read_text()  # gone, or a zombie


@pytest.mark.parametrize("ending", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_the_workers_end_with_the_coordinator_however_it_ends(tmp_path, ending):
    """Killed outright, interrupted or terminated while a stage runs: the stage's processes die
    too, the workers' copies are removed, and an interruption is one line, no traceback. It is
    started with Ctrl-C ignored, as a script's background job is (and as a test process left so
    by another test passes on): Ctrl-C still stops it."""
    pid_file = tmp_path / "sleeper.pid"
    repo = pipeline(tmp_path, SLOW.format(pid=pid_file))
    ignoring_ctrl_c = ["bash", "-c", 'trap "" INT; exec "$@"', "bash"]
    coordinator = subprocess.Popen(
        [*ignoring_ctrl_c, *COMMAND, "--logs", str(tmp_path / "logs"), "slow"],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240  # generous: on a loaded machine each process starts slowly
    while not pid_file.is_file() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline and coordinator.poll() is None
        time.sleep(0.2)
    coordinator.send_signal(ending)
    _, err = coordinator.communicate(timeout=deadline - time.monotonic())
    sleeper = Path(f"/proc/{int(pid_file.read_text())}/status")
    while sleeper.exists() and "\tZ" not in sleeper.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)  # the watchdog's turn after a SIGKILL
    assert not sleeper.exists() or "\tZ" in sleeper.read_text()
    while list(tmp_path.glob("repo.workers.*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list(tmp_path.glob("repo.workers.*"))  # the copies are removed
    if ending != signal.SIGKILL:
        assert coordinator.returncode == 130 and "Traceback" not in err, err
        assert err.strip().splitlines()[-1].startswith("fourds repro-parallel: interrupted")
