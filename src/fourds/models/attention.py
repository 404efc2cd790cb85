"""The one attention entry point, with interchangeable backends.

Backends:
    sdpa      torch.nn.functional.scaled_dot_product_attention (default; fused on CPU and GPU;
              torch picks the kernel)
    sdpa_cudnn, sdpa_flash, sdpa_efficient
              the same with one of its kernels pinned (cuDNN's, FlashAttention-2, the
              memory-efficient one); flash also runs on the CPU, the others on CUDA only
    xformers  xformers.ops.memory_efficient_attention (CUDA only; imported on first use)
    math      explicit softmax(q k^T / sqrt(d)) v, the readable reference
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

SDPA_KERNELS = {
    "sdpa_cudnn": SDPBackend.CUDNN_ATTENTION,
    "sdpa_flash": SDPBackend.FLASH_ATTENTION,
    "sdpa_efficient": SDPBackend.EFFICIENT_ATTENTION,
}


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str = "sdpa"
) -> torch.Tensor:
    """Multi-head attention without masking.

    Args:
        q: [B, heads, Nq, head_dim]
        k, v: [B, heads, Nk, head_dim]
        backend: "sdpa", a pinned SDPA kernel (SDPA_KERNELS), "xformers" or "math".

    Returns:
        [B, heads, Nq, head_dim]
    """
    if backend == "sdpa":
        return F.scaled_dot_product_attention(q, k, v)
    if backend in SDPA_KERNELS:
        with sdpa_kernel(SDPA_KERNELS[backend]):
            return F.scaled_dot_product_attention(q, k, v)
    if backend == "math":
        weights = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
        return weights.softmax(dim=-1) @ v
    if backend == "xformers":
        if not q.is_cuda:
            raise RuntimeError("attention backend 'xformers' needs CUDA tensors; use 'sdpa' on CPU")
        from xformers.ops import memory_efficient_attention  # lazy: no CPU kernels

        # xformers takes [B, N, heads, head_dim].
        out = memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2)
    known = ["sdpa", *SDPA_KERNELS, "xformers", "math"]
    raise ValueError(f"unknown attention backend {backend!r}: use one of {known}")


def probe(backend: str, device: torch.device, dtype: torch.dtype = torch.bfloat16) -> str | None:
    """Run `backend` forward and backward on a small random problem on `device` and compare it
    with "math" in float32.

    Returns:
        None when it runs and agrees (relative error under 2e-2, bf16's range), else why not,
        in one line (an installed xformers may have no kernels for the installed torch or GPU).
    """
    generator = torch.Generator(device).manual_seed(0)
    shape = (2, 4, 64, 64)  # [B, heads, N, head_dim]
    q, k, v = (
        torch.randn(shape, generator=generator, device=device).to(dtype).requires_grad_()
        for _ in range(3)
    )
    try:
        out = attention(q, k, v, backend)
        out.float().square().sum().backward()
    except Exception as error:  # any failure of a third-party kernel means "does not run"
        first_line = (str(error).strip().splitlines() or [""])[0]
        return f"{type(error).__name__}: {first_line}"[:300]
    reference = attention(*(x.detach().float() for x in (q, k, v)), "math")
    error = (out.float() - reference).norm() / reference.norm()
    if not error < 2e-2:
        return f"its output differs from the reference by {float(error):.2g} (relative)"
    return None


class Attention(nn.Module):
    """Multi-head self- or cross-attention with projections.

    Self-attention when `context` is None; otherwise queries come from `x` and keys and values
    from `context` (whose width is `context_dim`). `qk_norm` applies LayerNorm to each head's
    queries and keys (ViT-22B); `bias=False` drops the projection biases.

    The q and kv projections are separate layers (kv may read a context of another width);
    fourds.models.init draws self-attention's q, k and v like separate [dim, dim] layers.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        backend: str = "sdpa",
        context_dim: int | None = None,
        qk_norm: bool = False,
        bias: bool = True,
    ):
        super().__init__()
        self.heads, self.backend = heads, backend
        self.q = nn.Linear(dim, dim, bias=bias)
        self.kv = nn.Linear(context_dim or dim, 2 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)
        head_dim = dim // heads
        self.q_norm = nn.LayerNorm(head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.is_self_attention = context_dim is None

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        keys_values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x [B, N, dim], context [B, M, context_dim] or None -> [B, N, dim].

        keys_values: [B, M, 2 * dim], `self.kv(context)` computed by the caller (a readout
        projects before upsampling its context: fourds.models.readout), instead of `context`.
        x may then be [1, N, dim], the same for every item (a readout's learned queries): it is
        projected once and read by all B.
        """
        length, dim = x.shape[1:]
        if keys_values is None:
            keys_values = self.kv(x if context is None else context)
        batch = keys_values.shape[0]
        q = self.q(x).view(-1, length, self.heads, dim // self.heads)
        k, v = keys_values.view(batch, -1, 2, self.heads, dim // self.heads).unbind(2)
        # Normalised per head before heads move to dim 1, so q and k keep the [B, N, heads,
        # head_dim] memory order and so does the output (merging heads is a view on every
        # backend). Under autocast the QK LayerNorms return fp32 while v is bf16: attention
        # gets one dtype.
        q = self.q_norm(q).to(v.dtype).expand(batch, -1, -1, -1)
        k = self.k_norm(k).to(v.dtype)
        out = attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), self.backend)
        return self.proj(out.transpose(1, 2).reshape(batch, length, dim))
