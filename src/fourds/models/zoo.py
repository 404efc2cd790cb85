"""The model zoo: exact parameter counts and training FLOPs of every encoder config.

Counts come from building the encoder on the meta device, so no memory is allocated even for
the 22B configuration. Both depend on the input clip: the positional embedding has one row per
token, so an encoder has other counts at the paper's 16x224x224 than at its own ladder's clip
(`fourds zoo --ladders` counts each ladder's models at that ladder's clip). FLOPs are the
encoder's alone, counted by fourds.models.flops (the pretraining step also runs the decoder:
`fourds plan` prints that whole-step figure).
"""

from __future__ import annotations

import dataclasses

import torch

from fourds.config import LadderSpec, ModelConfig
from fourds.models.factory import build_encoder
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
        return build_encoder(cfg, frames, size)


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


COLUMNS = ("model", "width", "depth", "mlp", "heads", "tokens", "params", "GFLOPs/clip")
WIDTHS = (10, 7, 7, 7, 7, 8, 16, 14)


def format_zoo(title: str, rows: list[ZooEntry]) -> str:
    """`title`, then a table of `rows` (a line each), as `fourds zoo` prints them."""
    header = [COLUMNS[0].ljust(WIDTHS[0])]
    header += [name.rjust(width) for name, width in zip(COLUMNS[1:], WIDTHS[1:], strict=True)]
    lines = [title, "".join(header)]
    for row in rows:
        lines.append(
            f"{row.name:<10}{row.width:>7}{row.depth:>7}{row.mlp_dim:>7}{row.heads:>7}"
            f"{row.tokens:>8}{row.params:>16,}{row.train_flops / 1e9:>14,.3f}"
        )
    return "\n".join(lines) + "\n"


def ladders_zoo(ladders: list[LadderSpec]) -> str:
    """A table per ladder (smallest largest model first): its models counted at the ladder's
    own clip (curate.clip_frames x curate.resolution^2) and mask ratio, as its stages count
    them."""
    tables = []
    for ladder in ladders:
        shared = ladder.scales[0]  # the clip and the MAE are every scale's
        frames, size = shared.curate.clip_frames, shared.curate.resolution
        ratio = shared.mae.mask_ratio
        models = {spec.scale: spec.model for spec in ladder.scales}
        rows = zoo_table(models, frames, size, ratio)
        title = (
            f"ladder {ladder.name}: input {frames}x{size}x{size}, its own; encoder "
            f"training FLOPs per clip at its mask ratio {ratio}"
        )
        tables.append((rows[-1].params, format_zoo(title, rows)))
    return "\n".join(table for _, table in sorted(tables))
