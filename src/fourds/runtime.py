"""Device and thread set-up shared by the stages that run models."""

from __future__ import annotations

import torch

from fourds.config import ConfigError, RuntimeConfig


def setup_runtime(cfg: RuntimeConfig) -> torch.device:
    """Apply the thread count and return the device the params ask for."""
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
    return device
