import pytest
import torch

from fourds.models.attention import Attention, attention


def qkv(seed: int = 0, device: str = "cpu", dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    shapes = [(2, 4, 50, 16), (2, 4, 70, 16), (2, 4, 70, 16)]
    return [torch.randn(s, generator=generator).to(device=device, dtype=dtype) for s in shapes]


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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="xformers has no CPU kernels")
def test_xformers_agrees_with_sdpa_on_cuda():
    pytest.importorskip("xformers")
    q, k, v = qkv(device="cuda", dtype=torch.float16)
    torch.testing.assert_close(
        attention(q, k, v, "xformers"), attention(q, k, v, "sdpa"), atol=2e-3, rtol=2e-3
    )


def test_cross_attention_shapes():
    layer = Attention(dim=32, heads=4, context_dim=48)
    out = layer(torch.rand(2, 5, 32), torch.rand(2, 9, 48))
    assert out.shape == (2, 5, 32)
