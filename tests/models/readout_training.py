"""Training a readout on fresh toy batches, for the readout tests."""

from collections.abc import Callable

import torch


def train_on_fresh_batches(
    readout: torch.nn.Module, batch_loss: Callable[[], torch.Tensor], steps: int, lr: float = 1e-2
) -> list[float]:
    """AdamW on `batch_loss()` (the readout's loss on a new batch at each call) for `steps`
    steps; returns the loss of each step."""
    optimizer = torch.optim.AdamW(readout.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = batch_loss()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
