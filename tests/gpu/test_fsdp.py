"""FSDP2 on two GPUs (NCCL) through fourds.train.parallelize: the check of
tests/train/test_fsdp.py (a 2-process run against a 1-process run, then resumed from its
sharded checkpoint) with one GPU a process, within a tolerance instead of bit for bit."""

import pytest
import torch

from tests.gpu import CUDA_ONLY
from tests.train.test_fsdp import Tolerance, assert_two_processes_match_one

pytestmark = CUDA_ONLY

# Not bitwise. On the CPU both runs compute every pass with the same kernels in the same order,
# and only the exact 1/2-weighted sums of the two passes' gradients differ in form. On CUDA,
# kernels that accumulate with atomics (the fp32 memory-efficient attention backward among
# them) sum in an order that varies from run to run, cuBLAS and NCCL choose their own
# algorithms, and so the two runs may differ in the last bits, which 20 AdamW steps carry on
# (furthest in parameters whose gradient is only rounding noise, such as the keys' LayerNorm
# shift). 1e-3 (absolute and relative, each weight; relative, each logged loss) is far above
# that drift and far below what a wrong shard, batch row or initial weight gives: initial
# weights are drawn at scales of 0.02 and more, and one AdamW step moves a weight by up to
# the learning rate, 3e-3.
NCCL_TOLERANCE = Tolerance(loss=1e-3, weights=1e-3)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_two_gpus_match_one(tiny_shards, tmp_path):
    assert_two_processes_match_one(tiny_shards, tmp_path, "cuda", NCCL_TOLERANCE)
