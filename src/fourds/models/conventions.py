"""The numerics a model runs under: fourds' own, or the official 4DS checkpoints' (Flax).

fourds' encoders and readouts use the exact erf GELU and torch's LayerNorm. Weights converted
from the official checkpoints (fourds.models.convert) keep the official model's numerics,
Flax's defaults: the tanh GELU and the one-pass LayerNorm variance (`FlaxLayerNorm`). A model
picks its GELU and LayerNorm by the key of CONVENTIONS its weights file records.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class FlaxLayerNorm(nn.LayerNorm):
    """nn.LayerNorm with the statistics of Flax's `nn.LayerNorm` (its default
    `use_fast_variance`): mean and variance in at least float32, the variance in one pass as
    max(0, E[x^2] - E[x]^2), then (x - mean) * (rsqrt(var + eps) * weight) + bias, in the dtype
    of the input promoted with the weights'. torch's LayerNorm takes the variance in two passes,
    E[(x - E[x])^2], which differs where a token's mean is large against its spread."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., dim] -> [..., dim]."""
        out_dtype = torch.promote_types(x.dtype, self.weight.dtype)
        x = x.to(torch.promote_types(x.dtype, torch.float32))
        mean = x.mean(-1, keepdim=True)
        variance = (x.square().mean(-1, keepdim=True) - mean.square()).clamp_min(0.0)
        scale = torch.rsqrt(variance + self.eps) * self.weight
        return ((x - mean) * scale + self.bias).to(out_dtype)


class Convention(NamedTuple):
    """A model's numerics: its GELU (nn.GELU's `approximate`) and its LayerNorm."""

    gelu: str
    layer_norm: type[nn.LayerNorm]


CONVENTIONS = {
    "fourds": Convention("none", nn.LayerNorm),
    "official": Convention("tanh", FlaxLayerNorm),
}
