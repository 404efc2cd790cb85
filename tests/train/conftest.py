"""A tiny pretraining set-up shared by the training tests: a params file and the pretrain command
(the shards it trains on: the `tiny_shards` fixture of tests/conftest.py)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT
from tests.forked_python import run_python

CLI = [sys.executable, "-m", "fourds.cli"]
TORCHRUN_2 = [
    sys.executable,
    "-m",
    "torch.distributed.run",
    "--standalone",
    "--nproc-per-node",
    "2",
]


def write_tiny_params(path: Path, device: str = "cpu", **pretrain) -> Path:
    """params.yaml for a tiny model ("tiny") on the tiny shards, run on `device` ("cpu" or
    "cuda"); keywords override `pretrain`.

    The model uses QK-LayerNorm and activation checkpointing, so both run in every test.
    """
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    tiny = {"width": 32, "depth": 2, "heads": 2, "mlp_dim": 64, "tubelet": [2, 8, 8]}
    raw["models"] = {"tiny": {**tiny, "qk_norm": True, "parallel_blocks": False, "bias": True}}
    raw["ladder"]["scales"] = ["tiny"]
    raw["fidelity"]["extractor_scale"] = "tiny"  # one of ladder.scales
    raw["runtime"].update(device=device, threads=1)
    raw["curate"].update(clip_frames=4, pretrain_frames=12, resolution=16)
    raw["mae"].update(mask_ratio=0.5, decoder_width=16, decoder_depth=1, decoder_heads=2)
    raw["pretrain"].update(
        steps=20, batch_size=4, warmup_steps=2, log_every=1, lr=3e-3, checkpoint_every=0
    )
    raw["pretrain"]["activation_checkpointing"] = True
    raw["pretrain"].update(pretrain)
    for readout in raw["readouts"].values():  # one seed (tests of several name their own)
        readout["seeds"] = 1
    path.write_text(yaml.safe_dump(raw))
    return path


def world_pretraining(folder: Path, level: str):
    """The tiny model's pretraining spec on fresh world clips at complexity `level` (its
    params written to `folder`/<level>.yaml)."""
    from fourds.config import load_params

    path = write_tiny_params(
        folder / f"{level}.yaml", source="world", crop_scale=[1.0, 1.0], world_complexity=level
    )
    return load_params(path).pretraining("tiny")


def pretrain_command(launcher: list[str], params: Path, shards: Path, out: Path) -> list[str]:
    """The `fourds pretrain` command line for the tiny model."""
    return [
        *launcher,
        "pretrain",
        "--params", str(params),
        "--scale", "tiny",
        "--curated", str(shards),
        "--out", str(out),
    ]  # fmt: skip


def run_pretrain(launcher: list[str], params: Path, shards: Path, out: Path) -> str:
    """Run pretraining to the end; returns its stdout + stderr. A plain `fourds pretrain` (CLI)
    runs in a fork of this process where it can (tests/forked_python.py)."""
    command = pretrain_command(launcher, params, shards, out)
    if launcher == CLI:
        result = run_python(command[1:], Path.cwd(), timeout=300)
    else:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def losses(run_dir: Path) -> list[float]:
    """The logged losses of a finished run, one per logging window."""
    with open(run_dir / "loss.csv", newline="") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


def assert_losses_close(actual: list[float], expected: list[float], rtol: float) -> None:
    """As many logged losses as `expected`, each within relative `rtol` of its own."""
    assert len(actual) == len(expected)
    for step, (a, b) in enumerate(zip(actual, expected, strict=True)):
        assert abs(a - b) <= rtol * abs(b), f"step {step + 1}: {a} vs {b}"
