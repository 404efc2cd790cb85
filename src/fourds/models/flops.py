"""Training FLOPs counted from the model itself.

FLOPs per clip are counted by running one forward and backward pass of the real model on the
meta device under `torch.utils.flop_counter.FlopCounterMode`: every matmul, convolution and
attention call is counted as executed (visible tokens only, the decoder or the query tokens
included), nothing is allocated, and it works for the 22B configuration too.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from fourds.config import MAEConfig, ModelConfig
from fourds.models.mae import MaskedAutoencoder
from fourds.models.vit import VideoViT


def training_flops_per_clip(
    model_cfg: ModelConfig, mae_cfg: MAEConfig, frames: int, size: int
) -> int:
    """Forward + backward FLOPs of one MAE training step on one clip, counted on meta tensors.

    The count uses the sdpa attention backend; every backend does the same arithmetic.

    Args:
        frames, size: the clip shape [frames, size, size, 3].
    """
    with torch.device("meta"):
        model = MaskedAutoencoder(VideoViT(model_cfg, frames, size, "sdpa"), mae_cfg, "sdpa")
    keep_index, mask = model.sample_masks(1, torch.Generator().manual_seed(0))
    video = torch.zeros(1, frames, size, size, 3, device="meta")
    with FlopCounterMode(display=False) as counter:
        loss, _ = model(video, keep_index.to("meta"), mask.to("meta"))
        loss.backward()
    return counter.get_total_flops()
