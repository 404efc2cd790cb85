import torch

from fourds.train.parallelize import mixed_precision


def test_bf16_policy_computes_in_bf16_and_reduces_in_fp32():
    policy = mixed_precision("bf16")
    assert policy.param_dtype == torch.bfloat16
    assert policy.reduce_dtype == torch.float32
    assert mixed_precision("fp32").param_dtype is None
