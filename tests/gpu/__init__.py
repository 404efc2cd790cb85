"""GPU tests, selected with `pytest -m gpu` and skipped where CUDA is not available.

Each test module here sets `pytestmark = CUDA_ONLY`. Their checks are shared with the CPU
tests (the device is a parameter), which run the same code on every machine.
"""

import pytest
import torch

CUDA_ONLY = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
