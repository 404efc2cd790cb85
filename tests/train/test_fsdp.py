"""FSDP2 on CPU (gloo): a 2-process run follows the loss trajectory of a 1-process run."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch

from tests.train.conftest import CLI, TORCHRUN_2, run_pretrain, write_tiny_params

STEPS = 20


def losses(run_dir: Path) -> list[float]:
    with open(run_dir / "loss.csv", newline="") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_two_processes_follow_the_single_process_trajectory(tiny_shards, tmp_path):
    # A sharded DCP checkpoint is written at step 10 (and resumed from below).
    params = write_tiny_params(tmp_path / "params.yaml", steps=STEPS, checkpoint_every=10)
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    run_pretrain(CLI, params, tiny_shards, single)
    run_pretrain([*TORCHRUN_2, "-m", "fourds.cli"], params, tiny_shards, sharded)

    reference, trajectory = losses(single), losses(sharded)
    assert len(reference) == len(trajectory) == STEPS
    assert reference[-1] < reference[0]  # it trains
    for step, (a, b) in enumerate(zip(reference, trajectory, strict=True)):
        assert abs(a - b) / abs(a) < 1e-4, f"step {step + 1}: {a} vs {b}"

    # The checkpoint is gathered from the shards into the same full state dict.
    first, second = weights(single), weights(sharded)
    assert {k: v.shape for k, v in first.items()} == {k: v.shape for k, v in second.items()}
    # Weights agree closely; not element-wise tightly, because Adam turns the rounding noise of
    # gradients that are zero in exact arithmetic (e.g. the k-norm bias) into lr-sized steps.
    for name in first:
        if "k_norm.bias" not in name:
            torch.testing.assert_close(second[name], first[name], atol=2e-3, rtol=1e-2)

    # Running the sharded job again resumes from its step-10 checkpoint (each rank reloads its
    # shards and loader state) and ends with the same weights.
    shutil.copy(sharded / "checkpoint.pt", tmp_path / "uninterrupted.pt")
    log = run_pretrain([*TORCHRUN_2, "-m", "fourds.cli"], params, tiny_shards, sharded)
    assert "(step 10)" in log
    resumed = torch.load(tmp_path / "uninterrupted.pt", weights_only=True)["state_dict"]
    for name, tensor in weights(sharded).items():
        assert torch.equal(tensor, resumed[name]), name
