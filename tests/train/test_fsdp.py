"""FSDP2 on CPU (gloo): a 2-process run through fourds.train.parallelize ends with exactly the
weights of a 1-process run that takes the same forward/backward passes."""

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
def test_two_processes_end_bitwise_equal_to_one(tiny_shards, tmp_path):
    # Both runs take passes of 2 clips: two passes in one process, one in each of two. Every
    # gradient is then the same sum of the same per-pass gradients (the 1/2 weights are exact),
    # and with clipping inactive (a bound no gradient norm reaches) the AdamW updates are too.
    # A sharded DCP checkpoint is written at step 10 (and resumed from below).
    params = write_tiny_params(
        tmp_path / "params.yaml", steps=STEPS, checkpoint_every=10, micro_batch=2, grad_clip=1e6
    )
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    run_pretrain(CLI, params, tiny_shards, single)
    run_pretrain([*TORCHRUN_2, "-m", "fourds.cli"], params, tiny_shards, sharded)

    reference, trajectory = losses(single), losses(sharded)
    assert len(reference) == len(trajectory) == STEPS
    assert reference[-1] < reference[0]  # it trains
    for step, (a, b) in enumerate(zip(reference, trajectory, strict=True)):
        assert abs(a - b) / abs(a) < 1e-6, f"step {step + 1}: {a} vs {b}"  # logged means

    # The checkpoint gathered from the shards is the single process's, bit for bit.
    first, second = weights(single), weights(sharded)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(second[name], first[name]), name

    # Running the sharded job again resumes from its step-10 checkpoint (each rank reloads its
    # shards and loader state) and ends with the same weights.
    shutil.copy(sharded / "checkpoint.pt", tmp_path / "uninterrupted.pt")
    log = run_pretrain([*TORCHRUN_2, "-m", "fourds.cli"], params, tiny_shards, sharded)
    assert "(step 10)" in log
    resumed = torch.load(tmp_path / "uninterrupted.pt", weights_only=True)["state_dict"]
    for name, tensor in weights(sharded).items():
        assert torch.equal(tensor, resumed[name]), name
