"""Crop, resize and flip on CUDA give the CPU's clips bit for bit (fourds.data.augment: the
same float32 operations, unfused), so a GPU run trains on the batches of a CPU run."""

import numpy as np
import torch

from fourds.data.augment import ClipSampler, crop_resize_flip
from tests.gpu import CUDA_ONLY

pytestmark = CUDA_ONLY


def test_device_crops_are_bit_for_bit_the_cpus():
    segment = np.random.default_rng(0).integers(0, 256, (32, 64, 64, 3), dtype=np.uint8)
    sample = ClipSampler(8, 3, (0.08, 1.0), (0.75, 1.333))
    drawn = [sample(segment, np.random.default_rng(seed)) for seed in range(32)]
    windows = torch.stack([window for window, _ in drawn])
    views = torch.stack([view for _, view in drawn])
    on_cpu = crop_resize_flip(windows, views)
    for batched in (True, False):  # CUDA's default schedule, and the CPU's
        on_gpu = crop_resize_flip(windows.cuda(), views, batched)
        assert on_gpu.is_cuda and torch.equal(on_gpu.cpu(), on_cpu)
