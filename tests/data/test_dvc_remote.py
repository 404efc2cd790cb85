"""The in-repo DVC remote is verified on pull: a corrupted object is refused, not checked out."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def dvc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.slow
def test_a_corrupted_remote_object_is_refused_by_dvc_pull(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)
    shutil.copy2(REPO_ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    shutil.copy2(REPO_ROOT / "data.dvc", repo / "data.dvc")
    shutil.copytree(REPO_ROOT / "dvc-store", repo / "dvc-store")  # url = ../dvc-store, from .dvc/
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    video = next(
        path for path in sorted((repo / "dvc-store").rglob("*")) if path.is_file()
        and path.suffix != ".dir" and path.stat().st_size > 1000
    )  # fmt: skip
    video.chmod(0o644)
    with open(video, "r+b") as handle:  # one flipped byte, the size unchanged
        handle.seek(500)
        byte = handle.read(1)
        handle.seek(500)
        handle.write(bytes([byte[0] ^ 0xFF]))

    pulled = dvc("pull", "data.dvc", cwd=repo)
    assert pulled.returncode != 0, pulled.stdout + pulled.stderr
    checked_out = [path for path in (repo / "data").rglob("*") if path.is_file()]
    assert len(checked_out) == 0, "a corrupted corpus was checked out"
