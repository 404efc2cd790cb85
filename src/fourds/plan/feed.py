"""Feeding the GPUs: the loader's measured clips/s per CPU core, and the cores a GPU needs.

`benchmarks/loader_throughput.py` measures the clips the loader delivers per CPU-second of all
its threads (fourds.train.loader: memory-mapped segments, the window copied out, crop box and
flip drawn, masks, batching), at the clip size it was run at; the crop, resize and flip
themselves run on the GPU. Each GPU consumes its clips per step in one step time, so it needs
(its clips per step / step time) / (clips/s per core) cores.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fourds.plan.results import read_result

LOADER_RESULTS = Path("benchmarks/results/loader_throughput.json")


@dataclasses.dataclass(frozen=True)
class LoaderRate:
    """Clips/s one loader core delivers for clips [frames, size, size, 3] of `clip`; `source`
    says where the figure comes from (file, commit, CPU)."""

    clips_per_s_per_core: float
    clip: tuple[int, ...]
    source: str

    def cores(self, clips_per_s: float) -> float:
        """Loader cores that deliver `clips_per_s`."""
        return clips_per_s / self.clips_per_s_per_core


def read_loader_rate(path: str | Path = LOADER_RESULTS) -> LoaderRate | None:
    """The rate recorded in the loader benchmark's result file; None when there is none.

    Raises:
        ConfigError: the file is not a loader_throughput result (the message names it).
    """

    def parse(record: dict) -> LoaderRate:
        rate = float(record["results"]["clips_per_s_per_core"])
        clip = tuple(int(value) for value in record["config"]["clip"])
        commit = record["git"]["commit"][:7]
        cpu = record["device"]["cpu_model"]
        return LoaderRate(rate, clip, f"{path}, commit {commit}, {cpu}")

    return read_result(path, "loader_throughput result", parse)
