"""A linear layer on LayerNorm'd features that take no gradient, with the norm folded in.

A readout on a frozen encoder starts with linear(layer_norm(features)). The features are
constant, so the layer only needs the gradients of the norm's scale and shift and of the
linear's weights. With x = the normalised features (no scale or shift) [N, D], scale s and
shift t [D], and the linear's W [out, D] and b [out]:

    forward   y = x (W diag(s))^T + (W t + b)                  one product on the features
    backward  P = dy^T x [out, D], g = sum_n dy_n [out]       one product on the features
              dW = P diag(s) + g t^T,  ds = sum_k W_k * P_k,  dt = W^T g,  db = g

Autograd through the two layers would also form the gradient of the normalised features
(dy W, a product as large as the forward's) and run the norm's backward over every token; the
folded layer skips both and is exact up to rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _FoldedProjection(torch.autograd.Function):
    """(x [..., D] normalised, s [D], t [D], W [out, D], b [out]) -> [..., out]. In the
    forward/setup_context form, so that torch.func's vmap runs it (a readout's seeds batched)
    with the rule it derives from these two functions."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, scale, shift, weight, bias):  # noqa: ANN001, ANN205 (autograd's API)
        return F.linear(x, weight * scale, weight @ shift + bias)

    @staticmethod
    def setup_context(ctx, inputs, output):  # noqa: ANN001, ANN205
        x, scale, shift, weight, _ = inputs
        ctx.save_for_backward(x, scale, shift, weight)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        x, scale, shift, weight = ctx.saved_tensors
        grad = grad.reshape(-1, grad.shape[-1])  # [N, out]
        products = grad.T @ x.reshape(-1, x.shape[-1])  # [out, D]
        grad_sum = grad.sum(0)  # [out]
        grad_weight = products * scale + grad_sum[:, None] * shift
        return None, (weight * products).sum(0), grad_sum @ weight, grad_weight, grad_sum


def project_normalized(
    features: torch.Tensor, norm: nn.LayerNorm, linear: nn.Linear
) -> torch.Tensor:
    """linear(norm(features)): features [..., D] -> [..., out]. Folded (module docstring) when
    the features take no gradient and both layers have their shift and bias; as the two layers
    otherwise (a fine-tuned encoder's features, another LayerNorm's numerics)."""
    plain = features.requires_grad or type(norm) is not nn.LayerNorm
    if plain or norm.bias is None or linear.bias is None:
        return linear(norm(features))
    normalised = F.layer_norm(features, norm.normalized_shape, eps=norm.eps)
    return _FoldedProjection.apply(normalised, norm.weight, norm.bias, linear.weight, linear.bias)
