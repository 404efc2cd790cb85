"""torch.compile parity: with `pretrain.compile` (every transformer block compiled in place by
fourds.train.parallelize) a run logs the losses of the eager run. On CPU here; on CUDA in
tests/gpu/test_compile.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.train.conftest import CLI, assert_losses_close, losses, run_pretrain, write_tiny_params

STEPS = 5


def eager_and_compiled_losses(
    shards: Path, tmp_path: Path, device: str, precision: str
) -> tuple[list[float], list[float]]:
    """The logged losses of STEPS steps of the tiny model (activation checkpointing on) on
    `device` in `precision` ("fp32" or "bf16"), eager and compiled."""
    runs = {}
    for name, compile_blocks in (("eager", False), ("compiled", True)):
        params = write_tiny_params(
            tmp_path / f"{name}.yaml",
            device,
            steps=STEPS,
            precision=precision,
            compile=compile_blocks,
        )
        run_pretrain(CLI, params, shards, tmp_path / name)
        runs[name] = losses(tmp_path / name)
    assert len(runs["eager"]) == STEPS
    return runs["eager"], runs["compiled"]


@pytest.mark.slow
def test_compiled_blocks_log_the_eager_losses_on_cpu(tiny_shards, tmp_path):
    eager, compiled = eager_and_compiled_losses(tiny_shards, tmp_path, "cpu", "fp32")
    # Inductor fuses the blocks' reductions and sums in another order.
    assert_losses_close(compiled, eager, rtol=1e-5)
