"""FLOPs counted from the model agree with the transformer arithmetic."""

from __future__ import annotations

import dataclasses

import pytest

from fourds.config import ModelConfig
from fourds.models.flops import training_flops_per_clip
from fourds.models.zoo import encoder_on_meta, encoder_training_flops
from tests.conftest import tiny_mae_config

ENCODER = ModelConfig(256, 4, 4, 1024, (2, 8, 8), False, False, True)


@pytest.mark.parametrize("mask_ratio", [0.0, 0.75])
def test_counted_flops_match_the_encoder_arithmetic_when_the_decoder_is_negligible(mask_ratio):
    mae = tiny_mae_config(mask_ratio=mask_ratio, decoder_width=8, decoder_heads=1)
    counted = training_flops_per_clip(ENCODER, mae, frames=8, size=64)
    expected = encoder_training_flops(encoder_on_meta(ENCODER, 8, 64), mask_ratio)
    assert counted == pytest.approx(expected, rel=0.03)


def test_the_query_decoder_costs_what_its_extra_tokens_cost():
    """The last block processes visible + query tokens: more FLOPs than the encoder alone."""
    mae = tiny_mae_config(mask_ratio=0.75, decoder="queries", query_blocks=1)
    with_queries = training_flops_per_clip(ENCODER, mae, frames=8, size=64)
    encoder_only = encoder_training_flops(encoder_on_meta(ENCODER, 8, 64), 0.75)
    queries = (8 // 2) * (64 // 16) ** 2  # one per 2x16x16 coarse patch: 64
    visible = 64  # a quarter of the 256 tokens
    per_token_block = 6 * dataclasses.asdict(ENCODER)["width"] ** 2 * 12  # qkv, proj, mlp
    assert with_queries > encoder_only + queries * per_token_block * 0.9
    assert with_queries < encoder_only + (queries + visible) * per_token_block * 1.5
