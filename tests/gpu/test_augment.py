"""Crop, resize and flip on CUDA give the CPU's clips bit for bit (fourds.data.augment: the
same float32 operations, unfused or fused without contraction), so a GPU run trains on the
batches of a CPU run."""

import numpy as np
import torch

from fourds.data.augment import ClipSampler, crop_resize_flip, fused_crop
from tests.gpu import CUDA_ONLY

pytestmark = CUDA_ONLY


def drawn_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """32 windows [32, 8, 64, 64, 3] uint8 and their views [32, 5], drawn from random pixels."""
    segment = np.random.default_rng(0).integers(0, 256, (32, 64, 64, 3), dtype=np.uint8)
    sample = ClipSampler(8, 3, (0.08, 1.0), (0.75, 1.333))
    drawn = [sample(segment, np.random.default_rng(seed)) for seed in range(32)]
    return torch.stack([window for window, _ in drawn]), torch.stack([view for _, view in drawn])


def test_device_crops_are_bit_for_bit_the_cpus():
    windows, views = drawn_batch()
    on_cpu = crop_resize_flip(windows, views)
    for batched in (True, False):  # CUDA's default schedule, and the CPU's
        on_gpu = crop_resize_flip(windows.cuda(), views, batched)
        assert on_gpu.is_cuda and torch.equal(on_gpu.cpu(), on_cpu)


def test_the_fused_device_crop_is_bit_for_bit_the_cpus():
    # the compiled schedule a compiling run uses (fourds.train.step.view_crop): Triton
    # kernels without floating-point contraction
    windows, views = drawn_batch()
    fused = fused_crop(windows.cuda(), views.cuda())
    assert fused.is_cuda and torch.equal(fused.cpu(), crop_resize_flip(windows, views))
