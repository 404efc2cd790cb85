"""Pretraining's failure paths: a full disk at a checkpoint, a damaged checkpoint, shards that do
not fit the params, an error inside a training step. Each ends in one line (exit 2) or the
error itself, never an abort, and loses nothing."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import pytest
import torch

from fourds.cli import main
from fourds.train import checkpoint, pretrain
from tests.conftest import flip_tensor_byte, one_error_line
from tests.train.conftest import write_tiny_params

STEPS, EVERY = 12, 4


def pretrain_args(params: Path, shards: Path, out: Path) -> list[str]:
    return ["pretrain", "--params", str(params), "--scale", "tiny", "--curated", str(shards),
            "--out", str(out)]  # fmt: skip


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoint.pt", weights_only=True)["state_dict"]


def resume_folders(out: Path) -> list[str]:
    return sorted(path.name for path in out.glob("resume/*/*"))


@pytest.fixture
def tiny_params(tmp_path) -> Path:
    return write_tiny_params(tmp_path / "params.yaml", steps=STEPS, checkpoint_every=EVERY)


@pytest.fixture
def reference(tiny_params, tiny_shards, tmp_path) -> Path:
    """An uninterrupted run of the tiny params."""
    out = tmp_path / "reference"
    assert main(pretrain_args(tiny_params, tiny_shards, out)) == 0
    return out


def test_a_full_disk_at_a_checkpoint_is_one_line_and_the_rerun_ends_with_the_same_bits(
    tiny_params, tiny_shards, reference, tmp_path, monkeypatch, capsys
):
    save, saves = checkpoint.dcp.save, []

    def fills_at_the_second(*args, **kwargs):
        saves.append(kwargs["checkpoint_id"])
        if len(saves) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(*args, **kwargs)

    monkeypatch.setattr(checkpoint.dcp, "save", fills_at_the_second)
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(pretrain_args(tiny_params, tiny_shards, out)) == 2
    error = one_error_line(capsys.readouterr().err, "pretrain")
    assert "no space left" in error and "checkpoint of step 8" in error and "MiB free" in error
    assert resume_folders(out) == [f"step-{EVERY:08d}"]  # no partial folder left behind
    assert not (out / "checkpoint.pt").exists()

    monkeypatch.setattr(checkpoint.dcp, "save", save)  # space again
    assert main(pretrain_args(tiny_params, tiny_shards, out)) == 0
    assert f"(step {EVERY})" in capsys.readouterr().out
    resumed, uninterrupted = final_weights(out), final_weights(reference)
    for name, tensor in uninterrupted.items():
        assert torch.equal(resumed[name], tensor), name


def test_a_damaged_resume_checkpoint_is_refused_naming_the_file(
    tiny_params, tiny_shards, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    monkeypatch.setattr(pretrain, "step_on_batch", stopping_after(EVERY + 1))
    with pytest.raises(KeyboardInterrupt):
        main(pretrain_args(tiny_params, tiny_shards, out))
    monkeypatch.undo()
    (step,) = out.glob("resume/*/step-*")
    shard = max(step.glob("*.distcp"), key=lambda path: path.stat().st_size)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(data)

    capsys.readouterr()
    assert main(pretrain_args(tiny_params, tiny_shards, out)) == 2
    error = one_error_line(capsys.readouterr().err, "pretrain")
    assert shard.name in error and f"remove {step}" in error
    export = ["export", "--params", str(tiny_params), "--scale", "tiny", "--checkpoint",
              str(step), "--out", str(tmp_path / "exported.pt")]  # fmt: skip
    assert main(export) == 2
    assert shard.name in capsys.readouterr().err
    assert not (tmp_path / "exported.pt").exists()


def stopping_after(steps: int, error: type[BaseException] = KeyboardInterrupt):
    """A step_on_batch that raises `error` (by default as Ctrl-C would) at its call `steps` + 1."""
    real, calls = pretrain.step_on_batch, []

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) > steps:
            raise error("raised inside a training step")
        return real(*args, **kwargs)

    return step


def test_a_damaged_weights_file_is_refused_by_the_readout(tiny_params, tiny_shards, reference,
                                                          tmp_path, capsys):  # fmt: skip
    weights = tmp_path / "damaged.pt"
    weights.write_bytes((reference / "checkpoint.pt").read_bytes())
    flip_tensor_byte(weights)
    readout = ["readout", "--params", str(tiny_params), "--scale", "tiny", "--task", "depth",
               "--regime", "frozen", "--curated", str(tiny_shards), "--pretrained", str(weights),
               "--out", str(tmp_path / "readout")]  # fmt: skip
    capsys.readouterr()
    assert main(readout) == 2
    error = capsys.readouterr().err
    assert f"{weights}: damaged" in error and f"dvc checkout {weights}" in error
    assert not (tmp_path / "readout").exists()


def test_shards_of_another_resolution_are_refused_before_any_step(
    tiny_shards, tmp_path, monkeypatch, capsys
):
    params = write_tiny_params(tmp_path / "params.yaml", steps=STEPS)
    params.write_text(params.read_text().replace("resolution: 16", "resolution: 32"))
    monkeypatch.setattr(pretrain, "step_on_batch", None)  # any step would raise TypeError
    assert main(pretrain_args(params, tiny_shards, tmp_path / "run")) == 2
    error = capsys.readouterr().err
    assert "16x16 frames" in error and "curate.resolution=32" in error
    assert "dvc repro curate" in error


def test_an_error_inside_a_step_leaves_no_loader_thread_running(
    tiny_params, tiny_shards, tmp_path, monkeypatch
):
    monkeypatch.setattr(pretrain, "step_on_batch", stopping_after(2, RuntimeError))
    before = set(threading.enumerate())
    with pytest.raises(RuntimeError, match="inside a training step"):
        main(pretrain_args(tiny_params, tiny_shards, tmp_path / "run"))
    started = set(threading.enumerate()) - before  # tqdm's and DVCLive's threads live on
    assert [thread.name for thread in started if "torchdata" in thread_module(thread)] == []


def thread_module(thread: threading.Thread) -> str:
    """The module of the function `thread` runs (threading keeps it while the thread runs)."""
    return getattr(getattr(thread, "_target", None), "__module__", "")
