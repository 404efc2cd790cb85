"""A pinned corpus is refused when its content changed, though `dvc repro` re-pins data.dvc.

`dvc repro` rewrites a .dvc file to whatever its folder holds (treeverse/dvc#5292);
curate.pinned_data is a pin DVC does not rewrite, checked before curation reads anything.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from fourds.data import pin
from fourds.data.corpus import write_corpus
from fourds.data.pin import PinError, check_pinned, folder_digest
from tests.conftest import REPO_ROOT, TINY_WORLD, copy_tracked_files

# the tiny corpus's 12-frame 32x32 videos: 4-frame clips, 12-frame segments, 16x16 pixels
TINY = {"clip_frames": 4, "pretrain_frames": 12, "resolution": 16, "workers": 0}
RESTORE = "`git checkout data.dvc && dvc checkout data.dvc`"
GIT_USER = ["-c", "user.name=t", "-c", "user.email=t@t.invalid"]


def flip_byte(path: Path, offset: int = 100) -> None:
    """Corrupt `path` in place: one byte inverted, its size unchanged."""
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def dvc_md5(folder: Path, cache: Path) -> str:
    """DVC's own md5 of `folder`, computed by dvc-data (what `dvc add` writes)."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    fs = LocalFileSystem()
    _, _, tree = build(HashFileDB(fs, str(cache)), str(folder), fs, "md5")
    return tree.hash_info.value


@pytest.fixture
def folder(tmp_path) -> Path:
    """A small nested folder of files."""
    root = tmp_path / "data"
    (root / "pretrain" / "deeper").mkdir(parents=True)
    (root / "pretrain" / "a.mp4").write_bytes(bytes(range(256)) * 4)
    (root / "pretrain" / "deeper" / "b.npz").write_bytes(b"ground truth")
    (root / "readout-test").mkdir()
    (root / "readout-test" / "c.mp4").write_bytes(b"")
    return root


def test_the_digest_is_dvcs_md5_of_the_folder(folder, tmp_path):
    expected = dvc_md5(folder, tmp_path / "cache")
    assert folder_digest(folder) == expected
    flip_byte(folder / "pretrain" / "a.mp4")
    assert folder_digest(folder) != expected


def test_the_committed_pin_is_data_dvcs_md5():
    """The embedded corpus's pin, in experiments/ and the composed params.yaml, is data.dvc's."""
    (out,) = yaml.safe_load((REPO_ROOT / "data.dvc").read_text())["outs"]
    embedded = yaml.safe_load((REPO_ROOT / "experiments" / "curate" / "embedded.yaml").read_text())
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    assert embedded["pinned_data"] == params["curate"]["pinned_data"] == {"data": out["md5"]}


def test_an_unpinned_or_intact_folder_passes(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_pinned("data", {})
    other = "0" * 32 + ".dir"
    check_pinned("data", {"elsewhere": other})
    check_pinned("data", {"data": other}, root=tmp_path / "repository")  # its own data/
    digest = folder_digest(folder)
    for name in ("data", "./data", str(folder)):  # the same folder however it is written
        check_pinned(name, {"data": digest})


def test_a_changed_folder_is_refused_in_one_line(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pinned = folder_digest(folder)
    flip_byte(folder / "pretrain" / "a.mp4")
    with pytest.raises(PinError) as error:
        check_pinned("data", {"data": pinned})  # no DVC repository: no listing to compare
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"data: its content (md5 {folder_digest(folder)}) is not the ")
    assert f"pinned {pinned} (curate.pinned_data)" in message and RESTORE in message


def test_the_refusal_names_the_file_that_differs(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pinned_listing = pin.folder_listing(folder)
    monkeypatch.setattr(pin, "cached_listing", lambda digest: pinned_listing)
    pinned = folder_digest(folder)
    flip_byte(folder / "pretrain" / "deeper" / "b.npz", offset=3)
    with pytest.raises(PinError, match=r"; data/pretrain/deeper/b\.npz differs; nothing was "):
        check_pinned("data", {"data": pinned})


def test_the_difference_names_the_first_file_and_counts_the_rest():
    pinned = {"a": "1", "b": "2", "c": "3"}
    assert pin.difference("data", {"a": "1", "b": "9", "c": "3"}, pinned) == "data/b differs"
    assert pin.difference("data", {"b": "2", "c": "3"}, pinned) == "data/a is missing"
    listing = {**pinned, "0": "4", "c": "5"}
    assert pin.difference("d", listing, pinned) == "d/0 is not in the pin (and 1 more)"


def dvc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`dvc <args>` run in `cwd`, its output captured."""
    return subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True)


def git(*args: str, cwd: Path) -> None:
    """`git <args>` run in `cwd` as a test user; it must succeed."""
    subprocess.run(["git", *GIT_USER, *args], cwd=cwd, check=True, capture_output=True)


def pinned_tiny_repository(repo: Path) -> str:
    """A copy of this repository whose data.dvc pins a tiny corpus, pushed to its in-repo
    remote, committed with the pin in params.yaml, then pulled into an empty cache and
    workspace; the pinned md5."""
    copy_tracked_files(repo, skip=("runs/", "dvc-store/", "data.dvc"))
    (repo / "dvc.lock").unlink(missing_ok=True)
    git("init", "-q", cwd=repo)
    write_corpus(repo / "data", TINY_WORLD)
    assert dvc("add", "data", cwd=repo).returncode == 0
    (out,) = yaml.safe_load((repo / "data.dvc").read_text())["outs"]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["curate"].update(TINY, pinned_data={"data": out["md5"]})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert dvc("push", "data.dvc", cwd=repo).returncode == 0
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "a pinned tiny corpus", cwd=repo)
    shutil.rmtree(repo / "data")
    shutil.rmtree(repo / ".dvc" / "cache")
    assert dvc("pull", "data.dvc", cwd=repo).returncode == 0
    return out["md5"]


def curated(repo: Path) -> dict[str, bytes]:
    """Every file under runs/curate (relative path -> bytes)."""
    root = repo / "runs" / "curate"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def refused_repro(repo: Path, corrupt: Path, pinned: str) -> None:
    """`dvc repro curate` after one byte of `corrupt` flipped: refused with the pin's line."""
    flip_byte(corrupt)
    repro = dvc("repro", "curate", cwd=repo)
    output = repro.stdout + repro.stderr
    assert repro.returncode != 0 and "exited with 2" in output, output
    (line,) = [line for line in output.splitlines() if line.startswith("fourds curate: error:")]
    assert f"is not the pinned {pinned} (curate.pinned_data)" in line, output
    assert f"; {corrupt.relative_to(repo).as_posix()} differs;" in line and RESTORE in line


def restore_and_repro(repo: Path) -> None:
    """The refusal's restore command, then `dvc repro curate`, which succeeds."""
    for command in (["git", "checkout", "data.dvc"], ["dvc", "checkout", "data.dvc"]):
        subprocess.run(command, cwd=repo, check=True, capture_output=True)
    repro = dvc("repro", "curate", cwd=repo)
    assert repro.returncode == 0, repro.stdout + repro.stderr


@pytest.mark.slow
def test_dvc_repro_refuses_a_corrupted_pinned_corpus(tmp_path):
    """A corrupted workspace file: `dvc repro curate` re-pins data.dvc, but curation refuses
    the corpus and writes nothing; the restore command it names brings curation back. (DVC
    removes a stage's outputs before it runs its command; the restore and `dvc repro` bring
    the previous ones back from DVC's cache.)"""
    repo = tmp_path / "repo"
    pinned = pinned_tiny_repository(repo)
    video = repo / "data" / "pretrain" / "00001.mp4"

    refused_repro(repo, video, pinned)
    assert not (repo / "runs" / "curate").exists()
    restore_and_repro(repo)
    before = curated(repo)
    assert "manifest.json" in before and "shards/pretrain-000.npz" in before

    refused_repro(repo, video, pinned)
    assert curated(repo).items() <= before.items()  # nothing written or replaced
    restore_and_repro(repo)
    after = curated(repo)
    for result in (before, after):
        result.pop("execution.yaml")  # when it finished, should DVC run the stage again
    assert after == before
