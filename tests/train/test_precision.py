import dataclasses

import pytest
import torch
import torch.distributed as dist

from fourds.models.init import initialise
from fourds.models.mae import MaskedAutoencoder, patchify
from fourds.models.vit import VideoViT
from fourds.train.parallelize import ParallelPlan, mixed_precision, parallelize
from tests.conftest import tiny_mae_config
from tests.models.test_mae import TINY


def test_bf16_policy_computes_in_bf16_and_reduces_in_fp32():
    policy = mixed_precision("bf16")
    assert policy.param_dtype == torch.bfloat16
    assert policy.reduce_dtype == torch.float32
    assert mixed_precision("fp32").param_dtype is None


def qk_norm_mae(norm_pix_loss: bool) -> MaskedAutoencoder:
    model_cfg = dataclasses.replace(TINY, qk_norm=True)
    model = MaskedAutoencoder(
        VideoViT(model_cfg, frames=4, size=16), tiny_mae_config(norm_pix_loss=norm_pix_loss)
    )
    return initialise(model, seed=0)


def fp32_loss(model: MaskedAutoencoder, video, prediction, mask) -> torch.Tensor:
    """The loss recomputed from the returned prediction (in the compute dtype), in fp32 from
    the uint8 clip."""
    target = patchify(video.float() / 255.0, model.target_patch)
    if model.norm_pix_loss:
        mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    per_patch = ((prediction.float() - target) ** 2).mean(dim=-1)
    return (per_patch * mask.float()).sum() / mask.float().sum()


def uint8_batch(model: MaskedAutoencoder):
    generator = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (2, 4, 16, 16, 3), dtype=torch.uint8, generator=generator)
    return (video, *model.sample_masks(2, generator))


@pytest.mark.parametrize("norm_pix_loss", [False, True])
def test_autocast_keeps_targets_and_loss_in_fp32(norm_pix_loss, attention_dtypes):
    model = qk_norm_mae(norm_pix_loss)
    video, keep_index, mask = uint8_batch(model)
    with torch.autocast("cpu", torch.bfloat16):
        loss, prediction = model(video, keep_index, mask)
    # the prediction in bf16, as computed; targets and loss in fp32
    assert (loss.dtype, prediction.dtype) == (torch.float32, torch.bfloat16)
    assert torch.equal(loss, fp32_loss(model, video, prediction, mask))
    # QK-LayerNorm returns fp32 under autocast; q and k are cast back to v's bf16.
    assert attention_dtypes and all(dtypes == (torch.bfloat16,) * 3 for dtypes in attention_dtypes)


@pytest.mark.parametrize("norm_pix_loss", [False, True])
def test_fsdp_bf16_policy_keeps_targets_and_loss_in_fp32(norm_pix_loss, attention_dtypes):
    store = dist.HashStore()
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        plan = ParallelPlan(checkpointing=False, compile=False, precision="bf16", sharded=True)
        model = parallelize(lambda: qk_norm_mae(norm_pix_loss), plan, "cpu", seed=0)
        video, keep_index, mask = uint8_batch(model)
        loss, prediction = model(video, keep_index, mask)
        assert (loss.dtype, prediction.dtype) == (torch.float32, torch.bfloat16)
        assert torch.equal(loss, fp32_loss(model, video, prediction, mask))
        assert all(dtypes == (torch.bfloat16,) * 3 for dtypes in attention_dtypes)
        loss.backward()  # gradients reduced in fp32 onto the fp32 shards
        assert all(p.grad.dtype == torch.float32 for p in model.parameters())
    finally:
        dist.destroy_process_group()


def test_uint8_and_float_clips_give_the_same_fp32_loss():
    model = qk_norm_mae(norm_pix_loss=False)
    video, keep_index, mask = uint8_batch(model)
    from_uint8, _ = model(video, keep_index, mask)
    from_float, _ = model(video.float().div(255.0), keep_index, mask)
    assert torch.equal(from_uint8, from_float)
