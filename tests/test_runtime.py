import pytest
import torch

from fourds.config import ConfigError, RuntimeConfig
from fourds.runtime import setup_runtime


def test_cpu_runtime():
    assert setup_runtime(RuntimeConfig("cpu", "sdpa", 0)) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_xformers_on_a_cpu_device_is_refused(device):
    with pytest.raises(ConfigError, match="xformers' has no CPU kernels"):
        setup_runtime(RuntimeConfig(device, "xformers", 0))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(ConfigError, match="no CUDA device is visible"):
        setup_runtime(RuntimeConfig("cuda", "sdpa", 0))
