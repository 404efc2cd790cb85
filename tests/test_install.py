"""The install the README gives: torch and torchvision import together, as CI installs them."""

from __future__ import annotations

import importlib.metadata

import torch


def test_torchvision_imports_beside_torch_and_runs_its_compiled_ops():
    import torchvision

    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0]])
    kept = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.5, 0.7]), iou_threshold=0.5)
    assert kept.tolist() == [0, 2]  # the second box overlaps the first entirely
    assert importlib.metadata.version("torch-fidelity")  # the package that needs it
