"""FLOPs counted from the model agree with the transformer arithmetic, and the counts extended
from two depths equal the full counts."""

from __future__ import annotations

import dataclasses

import pytest

from fourds.config import ModelConfig
from fourds.models.flops import (
    _count_encoder_step,
    _count_mae_step,
    encoder_training_flops,
    training_flops_per_clip,
)
from tests.conftest import tiny_mae_config, tiny_model_config

ENCODER = ModelConfig(256, 4, 4, 1024, (2, 8, 8), False, False, True)


def encoder_arithmetic(cfg: ModelConfig, visible: int) -> int:
    """Training FLOPs of the encoder by hand: a [n, k] x [k, m] matmul costs 2nkm forward and
    twice that backward (6 per weight per token), attention scores and mixing 2 * 2 * s^2 * d
    forward per block; the tubelet embedding runs on the visible tokens only, forward and weight
    gradient only (4 per weight per token)."""
    t, p, q = cfg.tubelet
    embed = 4 * (3 * t * p * q * cfg.width) * visible
    block_weights = cfg.depth * (4 * cfg.width * cfg.width + 2 * cfg.width * cfg.mlp_dim)
    attention = 3 * 4 * cfg.depth * visible**2 * cfg.width
    return 6 * block_weights * visible + embed + attention


@pytest.mark.parametrize("mask_ratio, visible", [(0.0, 256), (0.75, 64)])
def test_encoder_flops_match_the_arithmetic(mask_ratio, visible):
    counted = encoder_training_flops(ENCODER, frames=8, size=64, mask_ratio=mask_ratio)
    assert counted == pytest.approx(encoder_arithmetic(ENCODER, visible), rel=0.03)


@pytest.mark.parametrize("mask_ratio", [0.0, 0.75])
def test_the_step_costs_the_encoder_when_the_decoder_is_negligible(mask_ratio):
    mae = tiny_mae_config(mask_ratio=mask_ratio, decoder_width=8, decoder_heads=1)
    counted = training_flops_per_clip(ENCODER, mae, frames=8, size=64)
    encoder = encoder_training_flops(ENCODER, 8, 64, mask_ratio)
    assert encoder < counted < encoder * 1.03


def test_the_query_decoder_costs_what_its_extra_tokens_cost():
    """The last block processes visible + query tokens: more FLOPs than the encoder alone."""
    mae = tiny_mae_config(mask_ratio=0.75, decoder="queries", query_blocks=1)
    with_queries = training_flops_per_clip(ENCODER, mae, frames=8, size=64)
    encoder_only = encoder_training_flops(ENCODER, 8, 64, 0.75)
    queries = (8 // 2) * (64 // 16) ** 2  # one per 2x16x16 coarse patch: 64
    visible = 64  # a quarter of the 256 tokens
    per_token_block = 6 * dataclasses.asdict(ENCODER)["width"] ** 2 * 12  # qkv, proj, mlp
    assert with_queries > encoder_only + queries * per_token_block * 0.9
    assert with_queries < encoder_only + (queries + visible) * per_token_block * 1.5


@pytest.mark.parametrize("decoder", ["mae_st", "queries"])
def test_step_flops_extended_from_two_depths_equal_the_full_count(decoder):
    model = tiny_model_config(depth=5)
    mae = tiny_mae_config(decoder=decoder, query_blocks=2, query_stride=(1, 1, 1))
    assert training_flops_per_clip(model, mae, 4, 16) == _count_mae_step(model, mae, 4, 16)


def test_encoder_flops_extended_from_two_depths_equal_the_full_count():
    model = tiny_model_config(depth=5)
    assert encoder_training_flops(model, 4, 16, 0.5) == _count_encoder_step(model, 4, 16, 0.5)
