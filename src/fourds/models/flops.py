"""Training FLOPs counted from the model itself: the one FLOP counter of fourds.

FLOPs per clip are counted by running one forward and backward pass of the real model on the
meta device under `torch.utils.flop_counter.FlopCounterMode`: every matmul, convolution and
attention call is counted as executed (visible tokens only; the decoder or the query tokens
included where asked), nothing is allocated, and it works for the 22B configuration too.

Two figures, both per clip:
- `encoder_training_flops`: the encoder alone on its visible tokens (what `fourds zoo` prints);
- `training_flops_per_clip`: the whole MAE step, encoder plus decoder or query tokens and pixel
  head (what `fourds plan` and the pretrain stage's MFU use). The difference is the decoder.

Every encoder block before the query blocks does the same arithmetic, so counts are taken at
two small depths and extended linearly to the real one: exact, and a 48-block 22B encoder
counts as fast as a 4-block one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from fourds.config import MAEConfig, ModelConfig
from fourds.models.factory import build_encoder, build_mae
from fourds.models.mae import random_masking


def _counted(step: Callable[[], torch.Tensor]) -> int:
    """FLOPs of `step()` (which builds and returns a scalar on meta tensors) and its backward."""
    with FlopCounterMode(display=False) as counter:
        step().backward()
    return counter.get_total_flops()


def _extended(count: Callable[[int], int], depth: int, fixed: int) -> int:
    """`count(depth)` from counts at depths fixed + 1 and fixed + 2, where the `fixed` last
    blocks differ from the others (the query blocks) and every other block costs the same."""
    if depth <= fixed + 2:
        return count(depth)
    shallow, deeper = count(fixed + 1), count(fixed + 2)
    return shallow + (depth - fixed - 1) * (deeper - shallow)


def _count_mae_step(model_cfg: ModelConfig, mae_cfg: MAEConfig, frames: int, size: int) -> int:
    """Forward + backward FLOPs of one MAE training step on one clip, at the config's depth."""
    with torch.device("meta"):
        model = build_mae(model_cfg, mae_cfg, frames, size)
    keep_index, mask = model.sample_masks(1, torch.Generator().manual_seed(0))
    video = torch.zeros(1, frames, size, size, 3, device="meta")
    return _counted(lambda: model(video, keep_index.to("meta"), mask.to("meta"))[0])


def training_flops_per_clip(
    model_cfg: ModelConfig, mae_cfg: MAEConfig, frames: int, size: int
) -> int:
    """Forward + backward FLOPs of one MAE training step on one clip [frames, size, size, 3].

    The count uses the sdpa attention backend; every backend does the same arithmetic.
    """
    fixed = mae_cfg.query_blocks if mae_cfg.decoder == "queries" else 0
    return _extended(
        lambda depth: _count_mae_step(
            dataclasses.replace(model_cfg, depth=depth), mae_cfg, frames, size
        ),
        model_cfg.depth,
        fixed,
    )


def _count_encoder_step(model_cfg: ModelConfig, frames: int, size: int, mask_ratio: float) -> int:
    """Forward + backward FLOPs of the encoder on one clip's visible tokens, at its depth."""
    with torch.device("meta"):
        encoder = build_encoder(model_cfg, frames, size)
    keep_index, _ = random_masking(1, encoder.num_tokens, mask_ratio)
    keep_index = keep_index.to("meta")
    video = torch.zeros(1, frames, size, size, 3, device="meta")
    return _counted(lambda: encoder(video, keep_index).sum())


def encoder_training_flops(
    model_cfg: ModelConfig, frames: int, size: int, mask_ratio: float
) -> int:
    """Forward + backward FLOPs of the encoder alone on one clip whose tokens are masked at
    `mask_ratio` (as many as `random_masking` keeps).

    The tubelet embedding runs on every token (forward and weight gradient: pixels need no
    gradient); the blocks run on the visible tokens.
    """
    return _extended(
        lambda depth: _count_encoder_step(
            dataclasses.replace(model_cfg, depth=depth), frames, size, mask_ratio
        ),
        model_cfg.depth,
        0,
    )
