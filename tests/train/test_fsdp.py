"""FSDP2 through fourds.train.parallelize: a 2-process run ends with the weights of a 1-process
run that takes the same forward/backward passes. Bitwise on CPU (gloo), here; the same check on
two GPUs (NCCL) is in tests/gpu/test_fsdp.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from tests.train.conftest import (
    CLI,
    TORCHRUN_2,
    assert_losses_close,
    losses,
    run_pretrain,
    write_tiny_params,
)

STEPS = 20


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """How close a 2-process run must come to the 1-process one: every logged loss within
    relative `loss`, every weight within `weights` (absolute and relative; 0: bitwise)."""

    loss: float
    weights: float


# The logged losses are means over the ranks' means, taken in another order: 1e-6, not 0.
BITWISE = Tolerance(loss=1e-6, weights=0.0)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The final weights a finished run wrote."""
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["state_dict"]


def assert_tensor_close(name: str, actual: torch.Tensor, expected: torch.Tensor, tol: float):
    """`actual` equals `expected` within `tol` absolute plus `tol` relative (0: bit for bit)."""
    torch.testing.assert_close(
        actual, expected, rtol=tol, atol=tol, msg=lambda detail: f"{name}: {detail}"
    )


def assert_weights_close(
    actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], tol: float
) -> None:
    """The same parameter names, each tensor within `tol` (see `assert_tensor_close`)."""
    assert actual.keys() == expected.keys()
    for name in expected:
        assert_tensor_close(name, actual[name], expected[name], tol)


def tiny_params(path: Path, device: str, steps: int, layout: str) -> Path:
    """The tiny model's params for the check: `steps` steps of passes of 2 clips, a sharded
    DCP checkpoint halfway (resumed from below), clipping inactive.

    Both runs take passes of 2 clips: two passes in one process, one in each of two. Every
    gradient is then the same sum of the same per-pass gradients (the 1/2 weights are exact),
    and with clipping inactive (a bound no gradient norm reaches) the AdamW updates are too."""
    return write_tiny_params(
        path,
        device,
        steps=steps,
        checkpoint_every=steps // 2,
        micro_batch=2,
        grad_clip=1e6,
        data_parallel={"tiny": layout},
    )


def assert_two_processes_match_one(
    shards: Path, tmp_path: Path, device: str, tolerance: Tolerance, layout: str = "fsdp"
) -> None:
    """Pretrain the tiny model on `device` ("cpu": gloo, "cuda": NCCL, one GPU a process) in
    one process and in two (torchrun), the two in data-parallel `layout`: see
    `assert_sharded_run_matches`."""
    params = tiny_params(tmp_path / "params.yaml", device, STEPS, layout)
    single = tmp_path / "single"
    run_pretrain(CLI, params, shards, single)
    assert_sharded_run_matches(single, params, shards, tmp_path / "sharded", STEPS, tolerance)


def assert_sharded_run_matches(
    single: Path, params: Path, shards: Path, sharded: Path, steps: int, tolerance: Tolerance
) -> None:
    """`params` run by two processes (torchrun) into `sharded` ends with the losses and weights
    of the 1-process run `single` within `tolerance`, and so does its rerun, resumed from its
    checkpoint at step steps // 2."""
    torchrun = [*TORCHRUN_2, "-m", "fourds.cli"]
    run_pretrain(torchrun, params, shards, sharded)

    reference = losses(single)
    assert len(reference) == steps
    assert reference[-1] < reference[0]  # it trains
    assert_losses_close(losses(sharded), reference, tolerance.loss)

    # The checkpoint gathered from the shards is the single process's.
    uninterrupted = weights(sharded)
    assert_weights_close(uninterrupted, weights(single), tolerance.weights)

    # Running the sharded job again resumes from its mid-run checkpoint (each rank reloads its
    # shards and loader state) and ends with the same weights.
    log = run_pretrain(torchrun, params, shards, sharded)
    assert f"(step {steps // 2})" in log
    assert_weights_close(weights(sharded), uninterrupted, tolerance.weights)


# The CPU check's schedule: 8 steps, a checkpoint after 4 (the loss falls by half over them).
CPU_STEPS = 8


@pytest.fixture(scope="module")
def one_process(tiny_shards, tmp_path_factory) -> Path:
    """The 1-process run both layouts are checked against: one process shards nothing, so the
    data-parallel layout does not enter it (a run of the fsdp params)."""
    root = tmp_path_factory.mktemp("one_process")
    out = root / "run"
    params = tiny_params(root / "params.yaml", "cpu", CPU_STEPS, "fsdp")
    run_pretrain(CLI, params, tiny_shards, out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["fsdp", "ddp"])
def test_two_processes_end_bitwise_equal_to_one(one_process, tiny_shards, tmp_path, layout):
    """FSDP shards every parameter over both processes; DDP (FSDP2 over shard groups of one
    process, a 2-D mesh) replicates them and all-reduces the gradients. On the CPU (gloo), bit
    for bit, over CPU_STEPS steps (`assert_sharded_run_matches`)."""
    params = tiny_params(tmp_path / "params.yaml", "cpu", CPU_STEPS, layout)
    sharded = tmp_path / "sharded"
    assert_sharded_run_matches(one_process, params, tiny_shards, sharded, CPU_STEPS, BITWISE)
