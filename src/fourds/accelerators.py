"""Accelerator peaks and model FLOPs utilisation (MFU).

MFU = achieved model FLOPs per second / the device's dense peak for the compute precision. Peaks
are known only for the accelerators listed in `PEAK_TFLOPS`; elsewhere MFU is not reported.
"""

from __future__ import annotations

import torch

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


def job_peak_flops(device: torch.device, precision: str, processes: int) -> float | None:
    """The dense peak FLOP/s of a job of `processes` processes, one `device` each, or None:
    the job's clips/s times FLOPs per clip over it is each device's MFU."""
    peak = peak_flops(device, precision)
    return None if peak is None else peak * processes


def model_flops_utilisation(
    flops_per_clip: float, clips_per_second: float, peak: float | None
) -> float | None:
    """Achieved / peak FLOP/s, or None when the peak is unknown."""
    if peak is None:
        return None
    return flops_per_clip * clips_per_second / peak
