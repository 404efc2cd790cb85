"""MFU needs a known accelerator peak."""

from __future__ import annotations

import pytest
import torch

from fourds.accelerators import job_peak_flops, model_flops_utilisation, peak_flops


def test_mfu_is_only_reported_for_a_known_peak():
    assert peak_flops(torch.device("cpu"), "bf16") is None
    assert model_flops_utilisation(1e12, 10.0, None) is None
    assert model_flops_utilisation(1e12, 10.0, 1e14) == pytest.approx(0.1)


def test_the_mfu_of_a_job_is_per_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H100 80GB HBM3")
    cuda = torch.device("cuda")
    assert job_peak_flops(cuda, "bf16", 8) == pytest.approx(8 * 989.4e12)
    assert job_peak_flops(torch.device("cpu"), "bf16", 8) is None
    # 8 devices each at half their peak: the job's clips/s over the job's peak is 0.5
    clips_per_second = 8 * 0.5 * 989.4e12 / 1e12
    assert model_flops_utilisation(1e12, clips_per_second, job_peak_flops(cuda, "bf16", 8)) == (
        pytest.approx(0.5)
    )
