"""Curation in worker processes: the output does not depend on curate.workers, a dead worker is
a clear error, and the checks against earlier sources (duplicates, layout) stay in order."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from fourds.config import ConfigError, CurateConfig, Params
from fourds.config.schema import parse
from fourds.data import curate as curate_module
from fourds.data.curate import Decoded, WorkerError, _accepted_rows, _Rejected, _Seen, curate
from fourds.data.shards import SPLITS
from tests.conftest import REPO_ROOT
from tests.data.real_videos import blocks, remux, write

CFG = CurateConfig(4, 2, 6, 16, 1, 0.0, "center")  # a shard per row: several shards


def mixed_corpus(tiny_corpus: Path, root: Path) -> Path:
    """A copy of the tiny corpus with one source of each kind of rejection curation makes."""
    corpus = root / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    pretrain, train, test = (corpus / split for split in SPLITS)
    (pretrain / "00001.npz").unlink()  # layout: the split's other sources have a sidecar
    (pretrain / "notes.mp4").write_bytes(b"not a video")  # corrupt
    write(pretrain / "short.avi", blocks(4, 48, 64, seed=3))  # too short
    sidecar = (pretrain / "00000.npz").read_bytes()
    shutil.copy(pretrain / "00000.mp4", pretrain / "cut.mp4")
    (pretrain / "cut.npz").write_bytes(sidecar[: len(sidecar) // 2])  # the same bytes, bad sidecar
    write(pretrain / "other.avi", blocks(12, 32, 32, seed=4))
    (pretrain / "other.npz").write_bytes(sidecar[: len(sidecar) // 2])  # a bad sidecar
    shutil.copy(pretrain / "00000.mp4", train / "copy.mp4")  # the same bytes in another split
    remux(train / "00000.mp4", test / "remux.mkv", "matroska")  # the same decoded frames
    return corpus


def test_the_output_does_not_depend_on_the_worker_count(tiny_corpus, tmp_path):
    corpus = mixed_corpus(tiny_corpus, tmp_path)
    for workers in (0, 2):
        curate(corpus, tmp_path / f"workers{workers}", dataclasses.replace(CFG, workers=workers))
    serial, parallel = tmp_path / "workers0", tmp_path / "workers2"
    rejected = json.loads((serial / "manifest.json").read_text())["rejected"]
    reasons = {entry["path"]: entry["reason"] for entry in rejected}
    assert list(reasons) == [
        "00001.mp4", "cut.mp4", "notes.mp4", "other.avi", "short.avi", "copy.mp4", "remux.mkv"
    ]  # fmt: skip
    assert reasons["00001.mp4"].startswith("ground truth: the other sources of pretrain have")
    assert reasons["cut.mp4"].startswith("duplicate: the same bytes")  # whatever its sidecar
    assert "not a readable video container" in reasons["notes.mp4"]
    assert "unreadable ground-truth sidecar" in reasons["other.avi"]
    assert reasons["short.avi"].startswith("too short")
    assert reasons["copy.mp4"].startswith("duplicate: the same bytes")
    assert reasons["remux.mkv"].startswith("duplicate: the same decoded frames")
    assert (serial / "manifest.json").read_bytes() == (parallel / "manifest.json").read_bytes()
    shards = sorted(path.name for path in (serial / "shards").iterdir())
    assert len(shards) > 3
    assert shards == sorted(path.name for path in (parallel / "shards").iterdir())
    for name in shards:
        assert (serial / "shards" / name).read_bytes() == (parallel / "shards" / name).read_bytes()


def die(source: Path, cfg: CurateConfig, split: str) -> Decoded:
    """A worker that is killed while decoding."""
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_dead_worker_is_an_error_and_leaves_the_output_as_it_was(
    tiny_corpus, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    curate(tiny_corpus, out, CFG)
    before = {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()}
    monkeypatch.setattr(curate_module, "decode_source", die)  # workers unpickle it by name
    with pytest.raises(WorkerError, match=r"worker process died .* curate\.workers"):
        curate(tiny_corpus, out, dataclasses.replace(CFG, workers=2))
    after = {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert after == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]  # nothing half-done


def test_a_negative_worker_count_is_refused_naming_the_key():
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw["curate"]["workers"] = -1
    with pytest.raises(ConfigError, match=r"^curate\.workers=-1 must be >= 0"):
        parse(Params, raw)


def row(frames: int) -> tuple[dict[str, np.ndarray], dict]:
    return {"video": np.zeros((4, 16, 16, 3), np.uint8), "depth": np.zeros((frames, 16, 16))}, {}


def test_a_source_rejected_for_its_layout_leaves_the_split_without_one():
    seen = _Seen()
    mixed = Decoded("a", None, "content a", 12, (row(4), row(3)))  # its rows cannot stack
    with pytest.raises(_Rejected, match=r"\['depth'\] differs in shape"):
        _accepted_rows(Path("a.mp4"), mixed, CFG, "pretrain", seen)
    assert seen.layouts == {} and seen.taken == {}
    other = Decoded("b", None, "content b", 12, (row(3), row(3)))
    assert _accepted_rows(Path("b.mp4"), other, CFG, "pretrain", seen) == other.rows
    assert seen.layouts["pretrain"]["depth"] == ((3, 16, 16), "f")


KILLED_PARENT = """
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from fourds.data.curate import exit_with_parent

if __name__ == "__main__":
    pool = ProcessPoolExecutor(
        1, multiprocessing.get_context("spawn"), exit_with_parent, (os.getpid(),)
    )
    print(pool.submit(os.getpid).result(), flush=True)
    pool.submit(time.sleep, 60)
    time.sleep(60)
"""


def running(pid: int) -> bool:
    """Whether process `pid` exists and has not exited (a zombie, exited but not yet reaped by
    whoever adopted it, has not run since)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_worker_ends_when_its_curating_process_is_killed(tmp_path):
    """curate's workers (started with exit_with_parent, as decode_in_order starts them) do not
    outlive a killed parent decoding for nobody."""
    script = tmp_path / "parent.py"
    script.write_text(KILLED_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    assert running(worker)  # in the middle of its 60 s task
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while running(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    if running(worker):
        os.kill(worker, signal.SIGKILL)
        pytest.fail(f"worker {worker} outlived its killed parent by 10 s")
