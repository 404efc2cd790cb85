import pytest
import torch

from fourds.config import ConfigError, RuntimeConfig
from fourds.models.attention import attention, probe
from fourds.runtime import setup_runtime


def test_cpu_runtime():
    chosen, device = setup_runtime(RuntimeConfig("cpu", "sdpa", 0))
    assert device == torch.device("cpu") and chosen.attention == "sdpa"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
@pytest.mark.parametrize("device", ["cpu", "auto"])
@pytest.mark.parametrize("attention", ["xformers", "sdpa_cudnn", "sdpa_efficient"])
def test_a_cuda_only_backend_on_a_cpu_device_is_refused(device, attention):
    with pytest.raises(ConfigError, match=f"{attention}' has no CPU kernels"):
        setup_runtime(RuntimeConfig(device, attention, 0))


def test_flash_attention_pinned_runs_on_the_cpu_and_computes_sdpa():
    chosen, _ = setup_runtime(RuntimeConfig("cpu", "sdpa_flash", 0))
    assert chosen.attention == "sdpa_flash"
    q, k, v = torch.randn(3, 2, 4, 16, 8).unbind(0)
    expected = attention(q, k, v, "sdpa")
    torch.testing.assert_close(attention(q, k, v, "sdpa_flash"), expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(ConfigError, match="no CUDA device is visible"):
        setup_runtime(RuntimeConfig("cuda", "sdpa", 0))


def test_the_probe_passes_a_backend_that_runs_and_names_why_one_does_not():
    cpu = torch.device("cpu")
    assert probe("sdpa", cpu, torch.float32) is None
    assert probe("math", cpu, torch.float32) is None
    assert probe("xformers", cpu, torch.float32) == (
        "RuntimeError: attention backend 'xformers' needs CUDA tensors; use 'sdpa' on CPU"
    )


def test_a_gpu_whose_xformers_fails_its_probe_runs_sdpa_and_says_so(monkeypatch, capsys):
    import fourds.runtime

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(fourds.runtime, "probe", lambda backend, device: "NotImplementedError: x")
    chosen, device = setup_runtime(RuntimeConfig("cuda", "xformers", 0))
    assert device == torch.device("cuda") and chosen.attention == "sdpa"
    assert capsys.readouterr().out == (
        "runtime.attention='xformers' does not run here (NotImplementedError: x); using 'sdpa'\n"
    )
    monkeypatch.setattr(fourds.runtime, "probe", lambda backend, device: None)
    chosen, _ = setup_runtime(RuntimeConfig("cuda", "xformers", 0))
    assert chosen.attention == "xformers"
    monkeypatch.setattr(fourds.runtime, "probe", lambda backend, device: f"{backend} fails")
    chosen, _ = setup_runtime(RuntimeConfig("cuda", "sdpa_cudnn", 0))  # a pinned SDPA kernel
    assert (
        chosen.attention == "sdpa" and "'sdpa_cudnn' does not run here" in capsys.readouterr().out
    )
