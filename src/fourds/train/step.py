"""One MAE pretraining step, as every launch runs it (and the memory simulation measures it)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from fourds.config import ConfigError
from fourds.data.augment import crop_resize_flip, fused_crop
from fourds.train.loader import on_compute_stream


@dataclasses.dataclass(frozen=True)
class StepRecipe:
    """How each step of a run trains.

    passes: slices of this process's batch, one forward/backward each (gradients accumulated
        with weight 1 / len(passes); FSDP averages them over the processes).
    grad_clip: the gradient norm clipped to (0: off).
    autocast: the context each forward runs in (bf16 autocast, or a disabled one).
    crop: applies each clip's view, (uint8 windows [B, T, S, S, 3], int64 views [B, 5]) ->
        uint8 clips [B, T, S, S, 3]: `crop_resize_flip`, or its compiled batched schedule
        (`view_crop`), the same bits.
    """

    passes: tuple[slice, ...]
    grad_clip: float
    autocast: contextlib.AbstractContextManager
    crop: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = crop_resize_flip

    @classmethod
    def whole_batch(
        cls, clips: int, grad_clip: float, autocast, crop=crop_resize_flip
    ) -> StepRecipe:
        """One pass over a batch of `clips`."""
        return cls((slice(0, clips),), grad_clip, autocast, crop)

    @classmethod
    def in_micro_batches(
        cls, clips: int, micro_batch: int, grad_clip: float, autocast, crop=crop_resize_flip
    ) -> StepRecipe:
        """Passes of `micro_batch` clips (0: one pass) over a process's batch of `clips`.

        Raises:
            ConfigError: `micro_batch` does not divide `clips`.
        """
        size = micro_batch or clips
        if clips % size:
            raise ConfigError(
                f"pretrain.micro_batch={micro_batch} does not divide the {clips} clips each "
                "process trains per step"
            )
        passes = tuple(slice(start, start + size) for start in range(0, clips, size))
        return cls(passes, grad_clip, autocast, crop)


def view_crop(
    device: torch.device, compiled: bool
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The crop a run on `device` applies its views with: the fused (compiled) batched schedule
    on CUDA when the run compiles (`pretrain.compile`), else `crop_resize_flip`."""
    return fused_crop if compiled and device.type == "cuda" else crop_resize_flip


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    video: torch.Tensor,
    keep_index: torch.Tensor,
    mask: torch.Tensor,
    recipe: StepRecipe,
) -> torch.Tensor:
    """Forward and backward over the recipe's passes, gradient clipping, the optimizer step.

    Args:
        video: [B, T, H, W, 3] uint8 clips of this process; keep_index [B, n_keep]; mask [B, N].

    Returns:
        the loss of this process's batch (the mean over the passes), detached.
    """
    weight = 1.0 / len(recipe.passes)
    optimizer.zero_grad(set_to_none=True)
    loss = torch.zeros((), device=video.device)
    for part in recipe.passes:
        with recipe.autocast:
            pass_loss, _ = model(video[part], keep_index[part], mask[part])
        (pass_loss * weight).backward()
        loss += pass_loss.detach() * weight
    if recipe.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
    optimizer.step()
    return loss


def step_on_batch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Any],
    recipe: StepRecipe,
) -> torch.Tensor:
    """`train_step` on one loader batch (fourds.train.loader): wait for its copy to the device
    (on the device, not the host), apply each clip's view (crop, resize, flip) there with the
    recipe's crop, train.

    Args:
        batch: {"video": uint8 [B, T, S, S, 3], "view": int64 [B, 5], "keep_index": [B, n_keep],
            "mask": bool [B, N]}, on the model's device (with the copy's "ready" event) or, on
            the CPU, on the host.
    """
    batch = on_compute_stream(batch)
    # uint8 video: the MAE scales it and computes targets and loss in fp32 in every mode.
    video = recipe.crop(batch["video"], batch["view"])
    return train_step(model, optimizer, video, batch["keep_index"], batch["mask"], recipe)
