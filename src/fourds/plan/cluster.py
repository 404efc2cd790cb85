"""The hardware side of a compute plan: GPU types, interconnects, and step time estimates.

Peaks are the vendors' dense tensor-core figures (`fourds.accelerators.PEAK_TFLOPS`, the
same table MFU is reported against); memory is the total each GPU reports (nvidia-smi);
bandwidths are per GPU and per direction. Time estimates are deliberately simple:

- compute: model FLOPs of the step / (GPUs x peak x MFU), with the MFU stated by the user
  (recomputation by activation checkpointing is not model FLOPs, so it lowers the MFU a run
  reaches rather than adding FLOPs here);
- communication, by data-parallel layout (`layout_seconds`): FSDP moves, per GPU and step,
  (N - 1) / N of the weights twice (all-gather in the forward pass and again in the backward
  pass, compute dtype) and of the gradients once (reduce-scatter, fp32), at the slowest link
  the ring crosses: NVLink inside a node, the inter-node fabric beyond one node; HSDP does that
  within a node on NVLink, then all-reduces each GPU's fp32 gradient shard across the nodes
  (2 (R - 1) / R of it, R nodes); DDP all-reduces every fp32 gradient over all N GPUs;
- a step takes the longer of the two, since FSDP overlaps its collectives with compute.
"""

from __future__ import annotations

import dataclasses

from fourds.accelerators import PEAK_TFLOPS
from fourds.config import ConfigError

MIB = 2**20
GB = 1e9
FP32 = 4


@dataclasses.dataclass(frozen=True)
class GPUType:
    """An accelerator: memory in bytes, dense peaks in TFLOP/s by precision, NVLink GB/s."""

    name: str
    memory_bytes: int
    peak_tflops: dict[str, float]
    nvlink_gb_per_s: float

    def peak_flops(self, precision: str) -> float:
        """Dense peak FLOP/s at `precision` ("bf16", or "fp32" through TF32)."""
        return self.peak_tflops[precision] * 1e12


GPUS = {
    "h100": GPUType("H100 SXM 80GB", 81559 * MIB, dict(PEAK_TFLOPS)["H100"], 450.0),
    "h200": GPUType("H200 SXM 141GB", 143771 * MIB, dict(PEAK_TFLOPS)["H200"], 450.0),
    "a100": GPUType("A100 SXM 80GB", 81920 * MIB, dict(PEAK_TFLOPS)["A100"], 300.0),
}


@dataclasses.dataclass(frozen=True)
class Interconnect:
    """How GPUs in different nodes talk; None: every GPU shares one NVLink domain."""

    name: str
    description: str
    gb_per_s: float | None


INTERCONNECTS = {
    "nvlink": Interconnect("nvlink", "one NVLink domain for all GPUs", None),
    "infiniband": Interconnect(
        "infiniband", "8-GPU NVLink nodes, 400 Gb/s InfiniBand NDR per GPU", 50.0
    ),
    "ethernet": Interconnect("ethernet", "8-GPU NVLink nodes, 100 Gb/s Ethernet per GPU", 12.5),
}


@dataclasses.dataclass(frozen=True)
class Cluster:
    """`count` GPUs of one type, `gpus_per_node` to a node, joined by `interconnect`."""

    gpu: GPUType
    count: int
    interconnect: Interconnect
    gpus_per_node: int = 8

    def bandwidth(self, devices: int) -> float:
        """Bytes/s per GPU of a ring over `devices` GPUs: NVLink within a node (or a single
        NVLink domain), else the inter-node fabric."""
        fabric = self.interconnect.gb_per_s
        if fabric is None or devices <= self.gpus_per_node:
            return self.gpu.nvlink_gb_per_s * GB
        return fabric * GB

    def describe(self) -> str:
        """One line: count, GPU, memory, peaks and interconnect."""
        gpu = self.gpu
        return (
            f"{self.count} x {gpu.name} ({gpu.memory_bytes / 2**30:.1f} GiB, "
            f"{gpu.peak_tflops['bf16']:g} TFLOP/s bf16 dense), {self.interconnect.name}: "
            f"{self.interconnect.description}"
        )


def make_cluster(gpu: str, count: int, interconnect: str) -> Cluster:
    """The cluster of `count` GPUs named `gpu` (a key of GPUS) joined by `interconnect` (a key
    of INTERCONNECTS); a ConfigError names the choices when a name is unknown."""
    if gpu not in GPUS:
        raise ConfigError(f"unknown GPU {gpu!r}: choose one of {sorted(GPUS)}")
    if interconnect not in INTERCONNECTS:
        raise ConfigError(
            f"unknown interconnect {interconnect!r}: choose one of {sorted(INTERCONNECTS)}"
        )
    if count < 1:
        raise ConfigError(f"GPU count {count} must be at least 1")
    return Cluster(GPUS[gpu], count, INTERCONNECTS[interconnect])


def compute_seconds(flops_per_clip: float, clips_per_device: int, peak: float, mfu: float) -> float:
    """Seconds of one step's compute on one device: FLOPs / (peak FLOP/s x MFU)."""
    return flops_per_clip * clips_per_device / (peak * mfu)


def fsdp_traffic_bytes(parameters: int, devices: int, compute_bytes: int) -> float:
    """Bytes each device sends per step under FSDP: (N - 1) / N of the weights twice in the
    compute dtype (all-gathers, forward and backward) and of the gradients once in fp32."""
    return (devices - 1) / devices * parameters * (2 * compute_bytes + FP32)


def all_reduce_bytes(size: float, devices: int) -> float:
    """Bytes each device sends in a ring all-reduce of `size` bytes over `devices`."""
    return 2 * (devices - 1) / devices * size


def shard_count(layout: str, cluster: Cluster) -> int:
    """Over how many GPUs a layout shards each parameter: all (fsdp), a node's (hsdp), none
    (ddp)."""
    return {"fsdp": cluster.count, "hsdp": min(cluster.gpus_per_node, cluster.count)}.get(layout, 1)


def layout_seconds(layout: str, parameters: int, cluster: Cluster, compute_bytes: int) -> float:
    """Seconds of one step's data-parallel communication per GPU under `layout` (the module's
    model), for `parameters` trained parameters in a `compute_bytes` compute dtype."""
    devices = cluster.count
    if layout == "ddp":
        return all_reduce_bytes(parameters * FP32, devices) / cluster.bandwidth(devices)
    shards = shard_count(layout, cluster)
    within = fsdp_traffic_bytes(parameters, shards, compute_bytes) / cluster.bandwidth(shards)
    nodes = devices // shards
    across = all_reduce_bytes(parameters * FP32 / shards, nodes) / cluster.bandwidth(devices)
    return within + across


def gpu_hours(step_seconds: float, steps: int, devices: int) -> float:
    """GPU-hours of `steps` steps of `step_seconds` on `devices` GPUs."""
    return step_seconds * steps * devices / 3600.0
