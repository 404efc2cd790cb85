"""MFU needs a known accelerator peak."""

from __future__ import annotations

import pytest
import torch

from fourds.accelerators import model_flops_utilisation, peak_flops


def test_mfu_is_only_reported_for_a_known_peak():
    assert peak_flops(torch.device("cpu"), "bf16") is None
    assert model_flops_utilisation(1e12, 10.0, None) is None
    assert model_flops_utilisation(1e12, 10.0, 1e14) == pytest.approx(0.1)
