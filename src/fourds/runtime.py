"""Device, thread and attention-kernel set-up shared by the stages that run models."""

from __future__ import annotations

import dataclasses

import torch

from fourds.config import ConfigError, RuntimeConfig
from fourds.models.attention import probe

FALLBACK_ATTENTION = "sdpa"  # torch's own kernels: present wherever torch runs
ALWAYS_RUNS = ("sdpa", "math")
CUDA_ONLY_ATTENTION = ("xformers", "sdpa_cudnn", "sdpa_efficient")


def setup_runtime(runtime: RuntimeConfig) -> tuple[RuntimeConfig, torch.device]:
    """Apply the thread count, pick the device `runtime` asks for, and check that the attention
    backend runs there.

    Returns:
        `runtime` with `attention` the backend that will run, and the device. On a
        GPU, an `xformers` or a pinned SDPA kernel that fails a small forward and backward
        (`probe`; e.g. an xformers wheel built for another torch) is replaced by sdpa, with a
        one-line notice; stages record the backend in their run.yaml.

    Raises:
        ConfigError: CUDA asked for and not visible, or a CUDA-only backend (xformers, the
            cuDNN and memory-efficient SDPA kernels) asked for on the CPU.
    """
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    if runtime.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "runtime.device='cuda' but no CUDA device is visible: use 'cpu' or 'auto'"
        )
    if runtime.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(runtime.device)
    attention = runtime.attention
    if attention in CUDA_ONLY_ATTENTION and device.type == "cpu":
        raise ConfigError(f"runtime.attention={attention!r} has no CPU kernels: use 'sdpa' on CPU")
    if attention not in ALWAYS_RUNS and device.type == "cuda":
        failure = probe(attention, device)
        if failure is not None:
            print(
                f"runtime.attention={attention!r} does not run here ({failure}); using "
                f"'{FALLBACK_ATTENTION}'",
                flush=True,
            )
            runtime = dataclasses.replace(runtime, attention=FALLBACK_ATTENTION)
    return runtime, device
