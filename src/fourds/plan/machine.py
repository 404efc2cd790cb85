"""The memory one pretraining process has where it runs, the bound of the params check
`fourds.plan.fits`:

- runtime.device 'cuda' (or 'auto' where CUDA is visible): each process has a GPU of its own,
  the one visible here (device 0's total memory); where none is visible (params composed for a
  cluster elsewhere), the stated budget is the largest GPU fourds plans for
  (`fourds.plan.cluster.GPUS`).
- 'cpu' (or 'auto' without CUDA): the host's memory, shared by a node's processes
  (launcher.nproc_per_node under torchrun or Slurm; one process when kind is local): a Slurm
  job's launcher.mem_gb where it states one, else this machine's physical memory, or its
  cgroup's limit where that is lower.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from fourds.config import LauncherConfig, RuntimeConfig
from fourds.plan.cluster import GPUS

# cgroup v2, then v1: the memory limit of the container this process runs in
CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


@dataclasses.dataclass(frozen=True)
class ProcessMemory:
    """bytes: the memory one pretraining process has; where: what it is, for messages (after
    "the N GiB "); on_gpu: the step runs on a GPU."""

    bytes: int
    where: str
    on_gpu: bool


def host_memory() -> int:
    """This machine's physical memory in bytes, or its cgroup's limit where that is lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in CGROUP_LIMITS:
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # "max": no limit
            total = min(total, int(text))
    return total


def process_memory(runtime: RuntimeConfig, launcher: LauncherConfig) -> ProcessMemory:
    """The memory one pretraining process of these params has (the module docstring)."""
    device = f"(runtime.device={runtime.device!r})"
    cuda = runtime.device == "cuda" or (runtime.device == "auto" and torch.cuda.is_available())
    if cuda and torch.cuda.is_available():
        gpu = torch.cuda.get_device_properties(0)
        return ProcessMemory(gpu.total_memory, f"of this machine's {gpu.name} {device}", True)
    if cuda:
        largest = max(GPUS.values(), key=lambda gpu: gpu.memory_bytes)
        where = f"of the largest GPU fourds plans for, {largest.name} {device}, none visible here"
        return ProcessMemory(largest.memory_bytes, where, True)
    if launcher.kind == "slurm" and launcher.mem_gb:
        total, where = launcher.mem_gb << 30, f"of a node's launcher.mem_gb={launcher.mem_gb}"
    else:
        total, where = host_memory(), "of host memory here"
    processes = 1 if launcher.kind == "local" else launcher.nproc_per_node
    if processes > 1:
        where += f" over its launcher.nproc_per_node={processes} processes"
    return ProcessMemory(total // processes, f"{where} {device}", False)
