"""Training FLOPs counted from the model itself, accelerator peaks, and model FLOPs utilisation.

FLOPs per clip are counted by running one forward and backward pass of the real model on the
meta device under `torch.utils.flop_counter.FlopCounterMode`: every matmul, convolution and
attention call is counted as executed (visible tokens only, the decoder or the query tokens
included), nothing is allocated, and it works for the 22B configuration too.

MFU = achieved model FLOPs per second / the device's dense peak for the compute precision. Peaks
are known only for the accelerators listed in `PEAK_TFLOPS`; elsewhere MFU is not reported.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from fourds.config import MAEConfig, ModelConfig
from fourds.models.mae import MaskedAutoencoder
from fourds.models.vit import VideoViT

# Dense (no sparsity) tensor-core peaks in TFLOP/s from the vendors' data sheets, by precision.
# Matched against torch.cuda.get_device_name() in order, so the more specific names come first.
PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H100 PCIe", {"bf16": 756.0, "fp32": 378.0}),
    ("H100", {"bf16": 989.4, "fp32": 494.7}),
    ("H200", {"bf16": 989.4, "fp32": 494.7}),
    ("A100", {"bf16": 312.0, "fp32": 156.0}),
)


def peak_flops(device: torch.device, precision: str) -> float | None:
    """Dense peak FLOP/s of `device` at `precision` ("bf16", or "fp32" via TF32), or None."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for model, peaks in PEAK_TFLOPS:
        if model in name:
            return peaks[precision] * 1e12
    return None


def training_flops_per_clip(
    model_cfg: ModelConfig, mae_cfg: MAEConfig, frames: int, size: int
) -> int:
    """Forward + backward FLOPs of one MAE training step on one clip, counted on meta tensors.

    The count uses the sdpa attention backend; every backend does the same arithmetic.

    Args:
        frames, size: the clip shape [frames, size, size, 3].
    """
    with torch.device("meta"):
        model = MaskedAutoencoder(VideoViT(model_cfg, frames, size, "sdpa"), mae_cfg, "sdpa")
    keep_index, mask = model.sample_masks(1, torch.Generator().manual_seed(0))
    video = torch.zeros(1, frames, size, size, 3, device="meta")
    with FlopCounterMode(display=False) as counter:
        loss, _ = model(video, keep_index.to("meta"), mask.to("meta"))
        loss.backward()
    return counter.get_total_flops()


def model_flops_utilisation(
    flops_per_clip: float, clips_per_second: float, peak: float | None
) -> float | None:
    """Achieved / peak FLOP/s, or None when the peak is unknown."""
    if peak is None:
        return None
    return flops_per_clip * clips_per_second / peak
