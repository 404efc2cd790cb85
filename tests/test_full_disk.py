"""A full disk: every command stops with one line naming the path, what it was writing and the
free space (exit 2), leaves no partial output, and completes once space is back.

Real full disks are small tmpfs mounts where the tests may mount one (root on Linux); the
write points are also hit with an injected ENOSPC, which runs everywhere."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from fourds.atomic import DiskFullError, atomic_directory, atomic_path, is_out_of_space
from fourds.cli import main
from fourds.data import corpus
from tests.conftest import one_error_line
from tests.train.conftest import pretrain_command, write_tiny_params


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Callable[[str], Path]]:
    """resize(size) -> a folder on a tmpfs of `size` (e.g. "64k"), remounted at that size on
    every call; skipped where the tests may not mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = []

    def resize(size: str) -> Path:
        options = f"size={size}" if not mounted else f"remount,size={size}"
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
            capture_output=True,
            text=True,
        )
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(size)
        return mount

    yield resize
    if mounted:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_curate_onto_a_full_disk_says_so_and_curates_once_space_is_back(
    small_disk, tiny_corpus, tmp_path, capsys
):
    params = write_tiny_params(tmp_path / "params.yaml")
    out = small_disk("16k") / "curated"
    command = ["curate", "--params", str(params), "--data", str(tiny_corpus), "--out", str(out)]
    assert main(command) == 2
    error = one_error_line(capsys.readouterr().err, "curate")
    assert f"no space left on the disk of {out}" in error and "MiB free" in error
    assert list(out.parent.iterdir()) == []  # no partial folder left

    small_disk("16m")
    assert main(command) == 0
    assert (out / "manifest.json").is_file()


def test_pretraining_onto_a_disk_too_small_for_its_weights_completes_once_space_is_back(
    small_disk, tiny_shards, tmp_path, capsys
):
    params = write_tiny_params(tmp_path / "params.yaml", steps=4)
    reference = tmp_path / "reference"
    command = [
        "pretrain",
        "--params",
        str(params),
        "--scale",
        "tiny",
        "--curated",
        str(tiny_shards),
    ]
    assert main([*command, "--out", str(reference)]) == 0
    out = small_disk("96k") / "run"
    capsys.readouterr()
    assert main([*command, "--out", str(out)]) == 2
    error = one_error_line(capsys.readouterr().err, "pretrain")
    assert "no space left" in error and "MiB free" in error
    assert not (out / "checkpoint.pt").exists() and not list(out.glob(".*partial*"))

    small_disk("64m")
    assert main([*command, "--out", str(out)]) == 0
    weights = torch.load(out / "checkpoint.pt", weights_only=True)["state_dict"]
    expected = torch.load(reference / "checkpoint.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(weights[name], tensor) for name, tensor in expected.items())


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        RuntimeError(
            "[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed "
            "writing file data/0: file write failed"
        ),  # fmt: skip
    ],
)
def test_every_form_of_a_full_disk_becomes_one_error_and_leaves_no_partial_file(tmp_path, error):
    assert is_out_of_space(error)
    target = tmp_path / "metrics.json"
    with pytest.raises(DiskFullError, match=f"{target} while writing the metrics"):
        with atomic_path(target, "the metrics") as partial:
            partial.write_text("{")
            raise error
    with pytest.raises(DiskFullError, match="while writing its files"):
        with atomic_directory(tmp_path / "folder") as partial:
            (partial / "shard.npz").write_bytes(b"x")
            raise error
    assert list(tmp_path.iterdir()) == []


def test_other_errors_pass_unchanged(tmp_path):
    assert not is_out_of_space(OSError(errno.EACCES, "Permission denied"))
    with pytest.raises(ValueError, match="not a disk"):
        with atomic_path(tmp_path / "file"):
            raise ValueError("not a disk")


def test_a_full_disk_outside_fourds_own_writes_is_one_line_too(tmp_path, monkeypatch, capsys):
    def fills(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "world.json"))

    monkeypatch.setattr(corpus, "write_corpus", fills)
    assert main(["synth", "--out", str(tmp_path / "corpus")]) == 2
    error = one_error_line(capsys.readouterr().err, "synth")
    assert "no space left on a disk it writes" in error and "world.json" in error


def test_a_checkpoint_save_that_fills_the_disk_is_one_line_and_resumes(
    tiny_shards, tmp_path, monkeypatch, capsys
):
    """torch.distributed.checkpoint wraps the archive writer's short write ("unexpected pos")
    in a CheckpointException, a BaseException: still fourds' one line, the run resumable."""
    from torch.distributed.checkpoint.api import CheckpointException

    from fourds.train import checkpoint

    def full_disk(state, checkpoint_id, no_dist):
        (Path(checkpoint_id) / "__0_0.distcp").write_bytes(b"x" * 598)
        short_write = RuntimeError(
            "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"
        )
        raise CheckpointException("save failed", {0: (short_write, None)})

    params = write_tiny_params(tmp_path / "params.yaml", steps=4, checkpoint_every=2)
    out = tmp_path / "run"
    command = pretrain_command([], params, tiny_shards, out)
    with monkeypatch.context() as patched:
        patched.setattr(checkpoint.dcp, "save", full_disk)
        assert main(command) == 2
    error = one_error_line(capsys.readouterr().err, "pretrain")
    assert "no space left on the disk of" in error and "checkpoint of step 2" in error
    assert "MiB free" in error and not list(out.glob("resume/*/.*partial*"))
    assert main(command) == 0  # space is back: the run completes
    assert (out / "checkpoint.pt").is_file()
