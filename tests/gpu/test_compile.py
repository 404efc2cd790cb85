"""torch.compile parity on CUDA: with `pretrain.compile` a run logs the eager run's losses, in
fp32 (TF32 matmuls) and in bf16 (autocast), over a few steps (the check of
tests/train/test_compile.py, which runs it on the CPU in fp32)."""

import pytest

from tests.gpu import CUDA_ONLY
from tests.train.conftest import assert_losses_close
from tests.train.test_compile import eager_and_compiled_losses

pytestmark = CUDA_ONLY

# Inductor fuses elementwise work and reductions into its own kernels: sums run in another
# order, and under autocast a fused kernel keeps in fp32 what eager rounds to bf16 between
# ops (relative rounding 2^-9 a value). fp32 allows for a matmul inductor may lower to its
# own fp32 kernel where eager multiplies on TF32 (10 significant bits); a broken compiled
# block (a wrong recomputation under activation checkpointing, a dropped op) moves the loss
# far more than either.
COMPILE_TOLERANCE = {"fp32": 2e-3, "bf16": 2e-2}


@pytest.mark.slow
@pytest.mark.parametrize("precision", sorted(COMPILE_TOLERANCE))
def test_compiled_blocks_log_the_eager_losses_on_cuda(tiny_shards, tmp_path, precision):
    eager, compiled = eager_and_compiled_losses(tiny_shards, tmp_path, "cuda", precision)
    assert_losses_close(compiled, eager, rtol=COMPILE_TOLERANCE[precision])
