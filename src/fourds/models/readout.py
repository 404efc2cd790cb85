"""The 4DS attention readout on frozen encoder features.

LayerNorm on the features of one intermediate block; features upsampled in time to the input
frame count; a learned temporal position embedding; one cross-attention from queries to all
feature tokens with a residual; LayerNorm and a GELU MLP (4x) with a residual; a linear output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fourds.models.attention import Attention
from fourds.models.vit import MLP, _init_weights


def readout_block_count(depth: int, readout_depth: float) -> int:
    """How many encoder blocks to run for a readout at fraction `readout_depth` of the depth.

    The features are the output of block int(depth * readout_depth) (1-based), for example the
    output of block 11 of 12 (index 10) at 0.95, as in the released 4DS readouts.
    """
    return max(1, int(depth * readout_depth))


class AttentionReadout(nn.Module):
    """Cross-attention readout from `num_queries` learned queries to frozen features."""

    def __init__(
        self,
        feature_dim: int,
        grid: tuple[int, int, int],
        frames: int,
        width: int,
        heads: int,
        num_queries: int,
        out_dim: int,
        backend: str = "sdpa",
    ):
        super().__init__()
        self.grid, self.frames = grid, frames
        self.feature_norm = nn.LayerNorm(feature_dim, eps=1e-6)
        self.temporal_embed = nn.Parameter(torch.zeros(1, frames, 1, feature_dim))
        self.queries = nn.Parameter(torch.zeros(1, num_queries, width))
        self.cross_attn = Attention(width, heads, backend, context_dim=feature_dim)
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.mlp = MLP(width, 4 * width)
        self.head = nn.Linear(width, out_dim)
        nn.init.trunc_normal_(self.temporal_embed, std=0.02)
        nn.init.trunc_normal_(self.queries, std=0.02)
        self.apply(_init_weights)

    def upsample_in_time(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, T'*h*w, D] -> [B, T, h*w, D], linear in time (align_corners=False)."""
        batch, _, dim = features.shape
        steps, height, width = self.grid
        x = features.reshape(batch, steps, height * width, dim).permute(0, 2, 3, 1)
        x = F.interpolate(
            x.reshape(batch, height * width * dim, steps), size=self.frames, mode="linear"
        )
        return x.reshape(batch, height * width, dim, self.frames).permute(0, 3, 1, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, T'*h*w, D] from the frozen encoder -> outputs [B, num_queries, out_dim]."""
        x = self.upsample_in_time(self.feature_norm(features)) + self.temporal_embed
        context = x.flatten(1, 2)  # [B, T*h*w, D]
        queries = self.queries.expand(features.shape[0], -1, -1)
        x = queries + self.cross_attn(queries, context)
        x = x + self.mlp(self.norm(x))
        return self.head(x)
