"""The model zoo: exact parameter counts and training FLOPs of every encoder config.

Counts come from building the encoder on the meta device, so no memory is allocated even for
the 22B configuration. FLOPs are the encoder's alone, counted by fourds.models.flops (the
pretraining step also runs the decoder: `fourds plan` prints that whole-step figure).
"""

from __future__ import annotations

import dataclasses

import torch

from fourds.config import ModelConfig
from fourds.models.flops import encoder_training_flops
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
                train_flops=encoder_training_flops(cfg, frames, size, mask_ratio),
            )
        )
    return sorted(rows, key=lambda row: row.params)
