"""One MAE pretraining step, as every launch runs it (and the memory simulation measures it)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from fourds.data.augment import crop_resize_flip
from fourds.train.loader import on_compute_stream


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    video: torch.Tensor,
    keep_index: torch.Tensor,
    mask: torch.Tensor,
    passes: list[slice],
    grad_clip: float,
    autocast: contextlib.AbstractContextManager,
) -> torch.Tensor:
    """Forward and backward over `passes` (slices of this process's batch, gradients
    accumulated with weight 1 / len(passes); FSDP averages them over the processes), gradient
    clipping to norm `grad_clip` (0: off), and the optimizer step.

    Args:
        video: [B, T, H, W, 3] uint8 clips of this process; keep_index [B, n_keep]; mask [B, N].

    Returns:
        the loss of this process's batch (the mean over the passes), detached.
    """
    weight = 1.0 / len(passes)
    optimizer.zero_grad(set_to_none=True)
    loss = torch.zeros((), device=video.device)
    for part in passes:
        with autocast:
            pass_loss, _ = model(video[part], keep_index[part], mask[part])
        (pass_loss * weight).backward()
        loss += pass_loss.detach() * weight
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss


def step_on_batch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Any],
    passes: list[slice],
    grad_clip: float,
    autocast: contextlib.AbstractContextManager,
) -> torch.Tensor:
    """`train_step` on one loader batch (fourds.train.loader): wait for its copy to the device
    (on the device, not the host), apply each clip's view (crop, resize, flip) there, train.

    Args:
        batch: {"video": uint8 [B, T, S, S, 3], "view": int64 [B, 5], "keep_index": [B, n_keep],
            "mask": bool [B, N]}, on the model's device (with the copy's "ready" event) or, on
            the CPU, on the host.
    """
    batch = on_compute_stream(batch)
    # uint8 video: the MAE scales it and computes targets and loss in fp32 in every mode.
    video = crop_resize_flip(batch["video"], batch["view"])
    return train_step(
        model, optimizer, video, batch["keep_index"], batch["mask"], passes, grad_clip, autocast
    )
