"""AdamW with weight decay on weight matrices only, an optional learning rate of their own for
the hidden matrices (muP), fused kernels on CUDA.

Decoupled weight decay applies to the weights of linear and convolution layers (matrices and
kernels) and to nothing else: not to biases, LayerNorm scales and shifts, positional
embeddings, mask tokens or learned queries. MAE-ST's pretraining script exempts only biases and
other 1-D parameters (its embeddings and tokens are decayed); fourds exempts the embeddings and
tokens too. Decaying an embedding or a
token pulls it towards zero for no benefit (it is not a map whose norm limits capacity), and
decaying a LayerNorm scale or a bias shrinks the activations the next layer sees.
"""

from __future__ import annotations

import gin
import torch
from torch import nn
from torch.optim import AdamW

DECAYED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def adamw_param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups for `model`: decay on layer weights, none on everything else.

    A parameter is decayed when it is the `weight` of an nn.Linear or nn.ConvNd (shape
    [out, in] or [out, in, *kernel]). Biases, norm parameters and free parameters of any shape
    (positional embeddings [1, N, width], mask tokens [1, 1, width], queries [1, Q, width])
    are not. Parameters that require no gradient are left out; shared parameters appear once.

    Returns:
        [{"params": decayed, "weight_decay": weight_decay},
         {"params": the rest, "weight_decay": 0.0}], each list in `named_parameters` order,
        ready for torch.optim.AdamW(groups, lr=..., betas=...).
    """
    decayed = {
        id(module.weight)
        for module in model.modules()
        if isinstance(module, DECAYED_LAYERS) and module.weight is not None
    }
    decay, no_decay, seen = [], [], set()
    for _, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        (decay if id(param) in decayed else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def with_hidden_lr(groups: list[dict], hidden: list[nn.Parameter], hidden_lr: float) -> list[dict]:
    """Split every group of `adamw_param_groups` in two: its parameters that are in `hidden`,
    at learning rate `hidden_lr`, and the rest, at the optimizer's (empty groups are dropped;
    weight decay as the group's)."""
    ids = {id(param) for param in hidden}
    split = []
    for group in groups:
        rest = [param for param in group["params"] if id(param) not in ids]
        own = [param for param in group["params"] if id(param) in ids]
        split += [{**group, "params": rest}] if rest else []
        split += [{**group, "params": own, "lr": hidden_lr}] if own else []
    return split


@gin.configurable("adamw")
def adamw(
    model: nn.Module,
    weight_decay: float,
    lr: float,
    device: torch.device,
    betas: tuple[float, float] = (0.9, 0.95),
    hidden_lr: float | None = None,
) -> AdamW:
    """AdamW over `adamw_param_groups`, with the fused kernel on CUDA (one launch for every
    parameter) and torch's per-parameter loop on the CPU, whose fp32 results the embedded study
    pins (the fused CPU kernel rounds differently).

    hidden_lr: the learning rate of `model.hidden_matrices()` (an MAE's; None: lr for every
        parameter). A schedule scales every group's rate by the same factor.
    """
    groups = adamw_param_groups(model, weight_decay)
    if hidden_lr is not None:
        groups = with_hidden_lr(groups, model.hidden_matrices(), hidden_lr)
    if device.type == "cuda":
        return AdamW(groups, lr=lr, betas=betas, fused=True)
    return AdamW(groups, lr=lr, betas=betas, foreach=False)


def enable_tf32(device: torch.device, precision: str) -> None:
    """fp32 runs on CUDA multiply on TF32 tensor cores (MFU is reported against the TF32 peak);
    a no-op elsewhere."""
    if device.type == "cuda" and precision == "fp32":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
