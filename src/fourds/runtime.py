"""Device, thread and attention-kernel set-up shared by the stages that run models."""

from __future__ import annotations

import dataclasses

import torch

from fourds.config import ConfigError, Params
from fourds.models.attention import probe

FALLBACK_ATTENTION = "sdpa"  # torch's own kernels: present wherever torch runs


def setup_runtime(params: Params) -> tuple[Params, torch.device]:
    """Apply the thread count, pick the device the params ask for, and check that the attention
    backend runs there.

    Returns:
        the params with `runtime.attention` the backend that will run, and the device. On a
        GPU, an `xformers` whose kernels fail a small forward and backward (`probe`; e.g. a
        wheel built for another torch) is replaced by sdpa, with a one-line notice; stages
        record the backend in their run.yaml.

    Raises:
        ConfigError: CUDA asked for and not visible, or xformers asked for on the CPU.
    """
    cfg = params.runtime
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "runtime.device='cuda' but no CUDA device is visible: use 'cpu' or 'auto'"
        )
    if cfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
    if cfg.attention == "xformers" and device.type == "cpu":
        raise ConfigError("runtime.attention='xformers' has no CPU kernels: use 'sdpa' on CPU")
    if cfg.attention == "xformers":
        failure = probe("xformers", device)
        if failure is not None:
            print(
                f"runtime.attention='xformers' does not run here ({failure}); using "
                f"'{FALLBACK_ATTENTION}'",
                flush=True,
            )
            runtime = dataclasses.replace(cfg, attention=FALLBACK_ATTENTION)
            params = dataclasses.replace(params, runtime=runtime)
    return params, device
