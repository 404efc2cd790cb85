"""The dtype the evaluation stages hold a frozen model in (`readout.precision`,
`fidelity.precision`).

A frozen model's weights are cast to the precision's dtype, so bf16 halves its memory: 4DS-j's
22B-parameter encoder takes about 41 GiB and runs its forward pass on one 80 GB GPU, without
sharding (`fourds plan` prints each stage's peak). Inputs are cast where the model reads them
(the tubelet embedding casts the clip to its weights' dtype), and callers cast outputs back to
fp32 where the numbers leave the model.
"""

from __future__ import annotations

from typing import TypeVar

import gin
import torch
from torch import nn

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
Module = TypeVar("Module", bound=nn.Module)


@gin.configurable("frozen")
def frozen(module: Module, precision: str, device: torch.device) -> Module:
    """`module` on `device` for inference: its weights in `precision`'s dtype ("fp32" or
    "bf16"), no gradients, eval mode."""
    return module.to(device=device, dtype=DTYPES[precision]).requires_grad_(False).eval()
