"""Flax's LayerNorm under the official convention: the variance in one pass, as the official
model computes it, where torch's two-pass variance would differ."""

import numpy as np
import pytest
import torch

from fourds.config import ModelConfig
from fourds.models.conventions import FlaxLayerNorm
from fourds.models.readout import AttentionReadout
from fourds.models.vit import VideoViT


def flax_layer_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """flax.linen.LayerNorm (epsilon 1e-6) in float32: mean and E[x^2] in one pass, the
    variance max(0, E[x^2] - E[x]^2), then (x - mean) * (rsqrt(var + eps) * scale) + bias."""
    mean = x.mean(-1, keepdims=True, dtype=np.float32)
    var = np.maximum(np.float32(0), (x * x).mean(-1, keepdims=True, dtype=np.float32) - mean * mean)
    return (x - mean) * (np.float32(1) / np.sqrt(var + np.float32(1e-6)) * scale) + bias


def norms(dim: int) -> tuple[FlaxLayerNorm, torch.nn.LayerNorm]:
    """Flax's LayerNorm and torch's, with the same random scale and bias."""
    generator = torch.Generator().manual_seed(0)
    scale = 1 + 0.3 * torch.randn(dim, generator=generator)
    bias = 0.3 * torch.randn(dim, generator=generator)
    pair = FlaxLayerNorm(dim, eps=1e-6), torch.nn.LayerNorm(dim, eps=1e-6)
    for norm in pair:
        norm.load_state_dict({"weight": scale, "bias": bias})
    return pair


def test_a_token_mean_100_times_its_spread_normalises_as_flax_does():
    """Tokens of 4 values 100 + k/16: every sum is exact in float32 whatever its order, so the
    one-pass variance is determined (E[x]^2 is rounded once, to within 2^-11 of 1e4) and any
    implementation of it agrees to rounding; torch's two-pass variance differs by ~1e-3."""
    rng = np.random.default_rng(0)
    x = (100 + rng.integers(-8, 9, size=(512, 4)) / 16).astype(np.float32)
    flax, plain = norms(4)
    scale, bias = (p.detach().numpy() for p in (flax.weight, flax.bias))
    expected = flax_layer_norm(x, scale, bias)
    with torch.no_grad():
        ours, two_pass = (norm(torch.from_numpy(x)).numpy() for norm in (flax, plain))
    assert np.abs(ours - expected).max() < 1e-5
    assert np.abs(two_pass - expected).max() > 1e-4  # the two conventions do differ here


def test_a_variance_lost_to_rounding_is_zero_as_in_flax():
    """x = (4095, 4097): E[x^2] = (16769025 + 16785409) / 2 is 2^24 in float32 (4097^2 and the
    sum round down), which is E[x]^2, so Flax's variance is 0 and it outputs
    (x - E[x]) / sqrt(1e-6) = -1000, 1000; torch's two-pass LayerNorm gives -1, 1."""
    flax, plain = FlaxLayerNorm(2, eps=1e-6), torch.nn.LayerNorm(2, eps=1e-6)
    x = torch.tensor([[4095.0, 4097.0]])
    with torch.no_grad():
        torch.testing.assert_close(flax(x), torch.tensor([[-1000.0, 1000.0]]))
        torch.testing.assert_close(plain(x), torch.tensor([[-1.0, 1.0]]), rtol=1e-6, atol=1e-6)


def test_flax_layer_norm_returns_the_dtype_of_its_input_and_weights_promoted():
    flax, _ = norms(8)
    x = torch.rand(3, 8)
    with torch.no_grad():
        assert flax(x).dtype == torch.float32
        flax.to(torch.bfloat16)  # a frozen encoder in bf16 (readout.precision)
        assert flax(x.bfloat16()).dtype == torch.bfloat16
        assert flax(x).dtype == torch.float32


@pytest.mark.parametrize(
    ("convention", "norm"), [("official", FlaxLayerNorm), ("fourds", torch.nn.LayerNorm)]
)
def test_every_layer_norm_follows_the_convention(convention, norm):
    """Converted official weights get Flax's LayerNorm in the encoder and the readout; fourds'
    own models keep torch's."""
    cfg = ModelConfig(16, 2, 2, 32, (2, 4, 4), qk_norm=False, parallel_blocks=False, bias=True)
    encoder = VideoViT(cfg, 4, 8, convention=convention)
    readout = AttentionReadout(16, encoder.grid, 4, 8, 2, 3, 0, 1, convention=convention)
    found = [
        m
        for model in (encoder, readout)
        for m in model.modules()
        if isinstance(m, torch.nn.LayerNorm)
    ]
    assert len(found) == 2 * cfg.depth + 2 and all(type(m) is norm for m in found)
