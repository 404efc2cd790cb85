"""The model zoo: exact parameter counts and training FLOPs of every encoder config.

Counts come from building the encoder on the meta device, so no memory is allocated even for
the 22B configuration. FLOPs follow the usual transformer arithmetic: a matmul with a
[n, k] x [k, m] shape costs 2*n*k*m forward and twice that backward (6x per parameter per
token for training), plus attention scores and mixing (2 * 2 * s^2 * d forward per block).
"""

from __future__ import annotations

import dataclasses

import torch

from fourds.config import ModelConfig
from fourds.models.vit import VideoViT, count_parameters

PAPER_INPUT = (16, 224)  # frames, size: the 4DS input 16x224x224


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One row of `fourds zoo`."""

    name: str
    width: int
    depth: int
    mlp_dim: int
    heads: int
    tokens: int
    params: int
    train_flops: float  # per clip, encoder only, at the given mask ratio


def encoder_on_meta(cfg: ModelConfig, frames: int, size: int) -> VideoViT:
    """The encoder with parameters on the meta device (shapes only, no storage)."""
    with torch.device("meta"):
        return VideoViT(cfg, frames, size)


def encoder_training_flops(encoder: VideoViT, mask_ratio: float) -> float:
    """Forward + backward FLOPs of the encoder for one clip whose tokens are masked at `mask_ratio`.

    The tubelet embedding runs on every token and, as pixels need no gradient, costs forward
    plus weight gradient only (4x per parameter per token); the blocks run on the visible ones.
    """
    cfg = encoder.cfg
    visible = max(1, round(encoder.num_tokens * (1.0 - mask_ratio)))
    embed = 4 * encoder.patch_embed.weight.numel() * encoder.num_tokens
    block_params = count_parameters(encoder.blocks)
    matmuls = 6 * block_params * visible
    attention = 3 * 4 * cfg.depth * visible**2 * cfg.width  # scores and mixing, fwd + bwd
    return float(embed + matmuls + attention)


def zoo_table(
    configs: dict[str, ModelConfig], frames: int, size: int, mask_ratio: float
) -> list[ZooEntry]:
    """One `ZooEntry` per config, sorted by parameter count."""
    rows = []
    for name, cfg in configs.items():
        encoder = encoder_on_meta(cfg, frames, size)
        rows.append(
            ZooEntry(
                name=name,
                width=cfg.width,
                depth=cfg.depth,
                mlp_dim=cfg.mlp_dim,
                heads=cfg.heads,
                tokens=encoder.num_tokens,
                params=count_parameters(encoder),
                train_flops=encoder_training_flops(encoder, mask_ratio),
            )
        )
    return sorted(rows, key=lambda row: row.params)
