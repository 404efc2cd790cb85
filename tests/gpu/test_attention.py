"""bf16 attention on CUDA: the sdpa and xformers backends, with QK-LayerNorm, in both bf16
modes of training, match an fp32 reference and each other, forward and backward (the checks
of tests/models/test_attention.py, which runs them on the CPU with sdpa and math)."""

import pytest

from tests.gpu import CUDA_ONLY
from tests.models.test_attention import (
    BF16_PRECISIONS,
    assert_bf16_attention_matches_fp32,
    assert_bf16_backends_agree,
)

pytestmark = CUDA_ONLY


def require_xformers() -> None:
    """Skip the calling test unless xformers imports (an optional extra, imported lazily)."""
    try:
        import xformers.ops  # noqa: F401
    except ImportError as error:
        pytest.skip(f"xformers is not importable ({error}): pip install -e '.[gpu]'")


@pytest.fixture(params=["sdpa", "xformers"])
def cuda_backend(request) -> str:
    """Each attention backend with CUDA kernels; xformers only where it is installed."""
    if request.param == "xformers":
        require_xformers()
    return request.param


@pytest.mark.parametrize("precision", BF16_PRECISIONS)
def test_bf16_attention_matches_fp32_reference_on_cuda(cuda_backend, precision, attention_dtypes):
    assert_bf16_attention_matches_fp32(cuda_backend, "cuda", precision, attention_dtypes)


@pytest.mark.parametrize("precision", BF16_PRECISIONS)
def test_sdpa_and_xformers_agree_in_bf16_on_cuda(precision):
    require_xformers()
    assert_bf16_backends_agree(("sdpa", "xformers"), "cuda", precision)
