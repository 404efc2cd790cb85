"""Step times measured on a GPU, for the plan's compute time: measured where a scale was run at
the plan's clips per GPU, assumed (and said so) elsewhere.

`benchmarks/gpu_step.py` writes `benchmarks/results/gpu/summary.json`: per case the scale, the
clips per GPU, "model" (the training step on clips already on the GPU) or "step" (the
pretraining loop's whole step: copy, crop, model), eager or compiled, and its milliseconds.
The plan takes, for each scale at its clips per GPU:

- measured: the fastest whole step measured there, else the fastest model step (the crop and
  copy then left out, and said so);
- assumed: the MFU of the same scale's measurement at the nearest batch (not a measurement of
  this batch: small batches run below it, as the measured 4DS-B at 4 and 32 clips shows), or
  without any measurement of the scale, the `--mfu` the plan is given.

Measurements count only for the GPU they were taken on (the cluster's GPU name must be in the
recorded device name).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fourds.config import ConfigError
from fourds.plan.results import read_result

GPU_RESULTS = Path("benchmarks/results/gpu/summary.json")


@dataclasses.dataclass(frozen=True)
class StepTime:
    """How long one step of a scale takes per GPU, and where that figure comes from."""

    seconds: float
    source: str  # "measured", "measured (model)", "assumed (...)"


@dataclasses.dataclass(frozen=True)
class MeasuredSteps:
    """The step times of one `gpu_step.py` run: (scale, clips per GPU, what) -> seconds, the
    fastest of its eager and compiled cases; `device` the GPU's name, `origin` the file, commit
    and GPU for the plan's header."""

    device: str
    times: dict[tuple[str, int, str], float]
    origin: str

    def applies_to(self, gpu_name: str) -> bool:
        """Whether these were measured on the cluster's GPU (e.g. "H100" in "NVIDIA H100 80GB
        HBM3"; the plan's GPU names start with their model)."""
        return gpu_name.split()[0].lower() in self.device.lower()

    def step_time(
        self, scale: str, clips: int, flops_per_clip: float, peak: float, mfu: float
    ) -> StepTime:
        """The step time of `scale` at `clips` per GPU (see the module docstring). `peak` is
        the GPU's dense peak FLOP/s, `mfu` the utilisation assumed without a measurement."""
        for what, source in (("step", "measured"), ("model", "measured (model)")):
            if (scale, clips, what) in self.times:
                return StepTime(self.times[scale, clips, what], source)
        batches = sorted({batch for name, batch, _ in self.times if name == scale})
        if not batches:
            return StepTime(flops_per_clip * clips / (peak * mfu), f"assumed (MFU {mfu:g})")
        nearest = min(batches, key=lambda batch: (abs(batch - clips), -batch))
        seconds = min(
            self.times[key] for key in self.times if key[0] == scale and key[1] == nearest
        )
        measured_mfu = flops_per_clip * nearest / seconds / peak
        return StepTime(
            flops_per_clip * clips / (peak * measured_mfu),
            f"assumed (MFU {measured_mfu:.2f} of {scale} at {nearest})",
        )


def read_measured_steps(path: str | Path = GPU_RESULTS) -> MeasuredSteps | None:
    """The step times in a gpu_step.py summary; None when there is no such file.

    Raises:
        ConfigError: the file is not a gpu_step summary, or a --quick run's (the message names
            it).
    """

    def parse(record: dict) -> MeasuredSteps:
        if record.get("quick"):
            raise ConfigError(f"{path} is a --quick run (tiny shapes), not a measurement")
        times: dict[tuple[str, int, str], float] = {}
        for case in record["cases"]:
            key = (str(case["scale"]), int(case["batch"]), str(case["what"]))
            seconds = float(case["ms"]) / 1000.0
            times[key] = min(seconds, times.get(key, seconds))
        device, commit = str(record["device"]), str(record["commit"])[:7]
        return MeasuredSteps(device, times, f"{path}, commit {commit}, {device}")

    return read_result(path, "gpu_step.py summary", parse)
