"""One MAE pretraining step, as every launch runs it (and the memory simulation measures it)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn


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
