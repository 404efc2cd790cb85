import collections
import contextlib

import pytest
import torch

from fourds.models.attention import Attention, attention
from fourds.models.init import initialise


def qkv(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    shapes = [(2, 4, 50, 16), (2, 4, 70, 16), (2, 4, 70, 16)]
    return [torch.randn(s, generator=generator) for s in shapes]


def test_sdpa_and_math_agree_on_cpu():
    q, k, v = qkv()
    torch.testing.assert_close(
        attention(q, k, v, "sdpa"), attention(q, k, v, "math"), atol=1e-5, rtol=1e-5
    )


def test_math_backend_is_softmax_attention():
    q, k, v = qkv(1)
    weights = torch.softmax(torch.einsum("bhqd,bhkd->bhqk", q, k) / 4.0, dim=-1)
    torch.testing.assert_close(
        attention(q, k, v, "math"), torch.einsum("bhqk,bhkd->bhqd", weights, v)
    )


def test_xformers_on_cpu_is_a_clear_error():
    q, k, v = qkv()
    with pytest.raises(RuntimeError, match="needs CUDA"):
        attention(q, k, v, "xformers")


def test_unknown_backend_is_refused():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="unknown attention backend 'flash'"):
        attention(q, k, v, "flash")


def test_cross_attention_shapes():
    layer = Attention(dim=32, heads=4, context_dim=48)
    out = layer(torch.rand(2, 5, 32), torch.rand(2, 9, 48))
    assert out.shape == (2, 5, 32)


# bf16 as training runs it: "autocast" is fp32 weights under autocast (one process), "bf16" is
# bf16 weights and input (FSDP's bf16 policy). The same checks run on CUDA, with the sdpa and
# xformers backends, in tests/gpu/test_attention.py.
BF16_PRECISIONS = ("autocast", "bf16")
# bf16 keeps 8 significant bits (relative rounding 2^-9, about 0.2%). Through the projections,
# QK-LayerNorms and softmax, errors measured on the CPU stay under 1% of the output and reach
# 4% of the LayerNorms' gradients (relative norms, see `layer_errors`).
BF16_TOLERANCE = 5e-2


def qk_norm_layer(backend: str) -> Attention:
    """Self-attention of width 128 with 4 heads and QK-LayerNorm, initial weights in fp32."""
    return initialise(Attention(dim=128, heads=4, backend=backend, qk_norm=True), seed=0)


def layer_inputs(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed input [2, 64, 128] and a fixed probe of the output's shape, in fp32."""
    generator = torch.Generator().manual_seed(0)
    x, probe = (torch.randn(2, 64, 128, generator=generator) for _ in range(2))
    return x.to(device), probe.to(device)


def forward_backward(
    layer: Attention, x: torch.Tensor, probe: torch.Tensor, autocast
) -> dict[str, torch.Tensor]:
    """The layer's output on `x` and the gradients of sum(output * probe) with respect to `x`
    and every parameter, in fp32 on the CPU, named "output", "input" and by parameter."""
    x = x.detach().requires_grad_()
    with autocast:
        output = layer(x)
    (output.float() * probe).sum().backward()
    results = {"output": output, "input": x.grad}
    results.update((name, param.grad) for name, param in layer.named_parameters())
    return {name: tensor.detach().float().cpu() for name, tensor in results.items()}


def fp32_reference() -> dict[str, torch.Tensor]:
    """`forward_backward` of the readable "math" backend in fp32 on the CPU."""
    x, probe = layer_inputs("cpu")
    return forward_backward(qk_norm_layer("math"), x, probe, contextlib.nullcontext())


def bf16_forward_backward(backend: str, device: str, precision: str) -> dict[str, torch.Tensor]:
    """`forward_backward` with `backend` on `device` in bf16 `precision` (BF16_PRECISIONS)."""
    layer = qk_norm_layer(backend).to(device)
    x, probe = layer_inputs(device)
    if precision == "bf16":
        layer, x = layer.to(torch.bfloat16), x.to(torch.bfloat16)
    autocast = torch.autocast(device, torch.bfloat16, enabled=precision == "autocast")
    return forward_backward(layer, x, probe, autocast)


def layer_errors(
    actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]
) -> dict[str, float]:
    """Relative errors |actual - expected| / |expected| (Euclidean norms) of the output, of
    the input's gradient and of each layer's parameter gradients taken together.

    Per layer, not per parameter: the keys' LayerNorm shift has a zero gradient (it adds the
    same q . shift to every score of a query, which softmax ignores), so every backend returns
    rounding noise for it, measured here against the gradient of that LayerNorm's scale.
    """
    layers = collections.defaultdict(list)
    for name in expected:
        layers[name.rpartition(".")[0] or name].append(name)
    errors = {}
    for layer, names in layers.items():
        difference = torch.cat([(actual[name] - expected[name]).flatten() for name in names])
        reference = torch.cat([expected[name].flatten() for name in names])
        errors[layer] = (difference.norm() / reference.norm()).item()
    return errors


def assert_bf16_close(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]):
    errors = layer_errors(actual, expected)
    assert max(errors.values()) <= BF16_TOLERANCE, errors


def assert_bf16_attention_matches_fp32(
    backend: str, device: str, precision: str, attention_dtypes: list
) -> None:
    """One bf16 forward and backward with `backend` on `device` gives attention q, k and v all
    in bf16 and matches the fp32 reference within BF16_TOLERANCE."""
    result = bf16_forward_backward(backend, device, precision)
    assert attention_dtypes == [(torch.bfloat16,) * 3]
    assert_bf16_close(result, fp32_reference())


def assert_bf16_backends_agree(backends: tuple[str, str], device: str, precision: str) -> None:
    """Two backends' bf16 forward and backward on `device` agree within BF16_TOLERANCE."""
    first, second = (bf16_forward_backward(b, device, precision) for b in backends)
    assert_bf16_close(first, second)


@pytest.mark.parametrize("precision", BF16_PRECISIONS)
@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_bf16_attention_matches_fp32_reference(backend, precision, attention_dtypes):
    assert_bf16_attention_matches_fp32(backend, "cpu", precision, attention_dtypes)


@pytest.mark.parametrize("precision", BF16_PRECISIONS)
def test_sdpa_and_math_agree_in_bf16(precision):
    assert_bf16_backends_agree(("sdpa", "math"), "cpu", precision)
