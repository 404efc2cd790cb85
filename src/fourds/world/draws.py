"""Random draws that are the same on every device: a counter-based hash in exact integer math.

The batched world (fourds.world.batch) samples thousands of scenes a step on the device that
renders them. Its randomness cannot come from torch's generators, whose streams differ between
a CPU and a GPU; it comes from `Draws`: uniform i of clip `key` is a 32-bit integer hash of
(key, i), computed with int64 tensor operations that never overflow (products of a 32-bit value
by a 16-bit constant), so every bit is the same on any device. A clip's draws are a pure function
of its key. Keys are 64 bits (two 32-bit halves), in separate domains for pretraining clips
(seed, step, row), corpus videos (seed, split, index) and the held-out clips pretraining is
measured on (fourds.train.heldout), so no pretraining clip is ever a corpus video (a readout's
test clip) or a held-out clip by chance.
"""

from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
UNIT = 2.0**-24  # 24 random bits: a float32 uniform on [0, 1) is exact


def _multiply(values: torch.Tensor, constant: int) -> torch.Tensor:
    """values * constant modulo 2**32 for int64 values in [0, 2**32) and a 32-bit constant,
    in two 16-bit halves so that no product leaves int64."""
    low, high = constant & 0xFFFF, constant >> 16
    return (values * low + (((values * high) & 0xFFFF) << 16)) & MASK32


def hash32(values: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xor-shift-multiply, two rounds) of int64 values in [0, 2**32)."""
    values = values & MASK32
    values = values ^ (values >> 16)
    values = _multiply(values, 0x7FEB352D)
    values = values ^ (values >> 15)
    values = _multiply(values, 0x846CA68B)
    return values ^ (values >> 16)


PRETRAINING, CORPUS, HELDOUT = 0x2545F491, 0x4F6CDD1D, 0x1B873593  # the key domains


def clip_keys(
    seed: int, group: int, index: torch.Tensor, domain: int = PRETRAINING
) -> torch.Tensor:
    """Keys int64 [B, 2] (two 32-bit halves) of the clips `index` (int64 [B]) of `group`:
    rows of batch `group` of a run seeded `seed` (domain PRETRAINING), videos of split
    number `group` of a corpus (domain CORPUS), or held-out clips (domain HELDOUT). Within a
    group every index has its own key (hash32 is one to one); across groups and domains two keys
    meet with chance 2**-64."""
    halves = []
    for salt in (domain, domain ^ 0x68E31DA4):
        base = hash32(torch.tensor(seed ^ salt, dtype=torch.int64, device=index.device))
        halves.append(hash32(hash32(base ^ group) ^ index))
    return torch.stack(halves, dim=-1)


class Draws:
    """The uniform draws of a batch of clips, consumed in order.

    Args:
        keys: int64 [B, 2], one key per clip (`clip_keys`: two 32-bit halves).
    """

    def __init__(self, keys: torch.Tensor):
        self.low, self.high = hash32(keys[:, 0]), hash32(keys[:, 1])
        self.used = 0

    def __len__(self) -> int:
        return len(self.low)

    def uniform(self, *shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        """float32 [B, *shape] uniform on [low, high): the next prod(shape) draws of each clip."""
        count = 1
        for size in shape:
            count *= size
        counters = torch.arange(self.used, self.used + count, device=self.low.device)
        self.used += count
        bits = hash32(hash32(self.low[:, None] ^ counters) ^ self.high[:, None])
        unit = (bits >> 8).to(torch.float32) * UNIT
        return (low + (high - low) * unit).reshape(len(self), *shape)

    def integers(self, high: torch.Tensor | int, *shape: int) -> torch.Tensor:
        """int64 [B, *shape] uniform in [0, high) (`high` an int or int64 [B])."""
        high = torch.as_tensor(high, device=self.low.device)
        high = high.reshape(-1, *([1] * len(shape))) if high.dim() else high
        unit = self.uniform(*shape)
        return torch.minimum((unit * high).to(torch.int64), high - 1)

    def normal(self, *shape: int) -> torch.Tensor:
        """float32 [B, *shape] standard normal (Box-Muller: its log and cosine are the only
        operations whose last bit may differ between devices)."""
        radius = torch.sqrt(-2.0 * torch.log(1.0 - self.uniform(*shape)))
        return radius * torch.cos(2.0 * torch.pi * self.uniform(*shape))

    def sign(self, *shape: int) -> torch.Tensor:
        """float32 [B, *shape] of -1 or +1 with equal chance."""
        return torch.where(self.uniform(*shape) < 0.5, -1.0, 1.0)
