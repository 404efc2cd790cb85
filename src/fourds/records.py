"""The records every stage leaves behind: what produced its outputs (`run.yaml`, hashed by DVC)
and how the run went (`execution.yaml`, not hashed)."""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from fourds.atomic import atomic_path, file_digest
from fourds.config.guard import params_digest
from fourds.config.operative import operative_config
from fourds.errors import ReaderError

EXECUTION_RECORD = "execution.yaml"
NOT_RUN = "not run"  # a torch field of a stage that ran no torch (machine_record)
RECORDED_PACKAGES = (
    "fourds",
    "torch",
    "numpy",
    "av",
    "dvc",
    "hydra-core",
    "gin-config",
    "torch-fidelity",
    "papermill",
)


def git_commit(folder: str | Path = ".") -> str:
    """The commit checked out where `folder` lies ("unknown" outside a git repository)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder, capture_output=True, text=True, check=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip()


def machine_record(torch_ran: bool | None = None) -> dict[str, Any]:
    """Where a stage ran: the CPU (model, cores, the kernel path torch picked on it), the torch
    build, every visible GPU (`gpus`, an empty list on a machine without one) with the NVIDIA
    driver and CUDA versions, and the fourds that ran (its version, and the commit of the source
    tree it was imported from: installed or not).

    `torch_ran`: whether torch ran on the machine (None: whether this process imported it). A
    stage that ran no torch (curation, the report) records the torch installed, NOT_RUN for
    torch's kernel path and CUDA build, and the GPUs nvidia-smi lists: importing torch only to
    name them would cost it seconds."""
    import fourds

    source = Path(fourds.__file__).resolve().parent
    if torch_ran is None:
        torch_ran = "torch" in sys.modules
    torch = importlib.import_module("torch") if torch_ran else None
    machine: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability() if torch else NOT_RUN,
        "torch": str(torch.__version__) if torch else metadata.version("torch"),
        "torch_cuda": (torch.version.cuda or "none") if torch else NOT_RUN,
        "gpus": [],  # the key is there on every machine: empty without a GPU
        "fourds": {"version": fourds.__version__, "source_commit": git_commit(source)},
    }
    if torch and torch.cuda.is_available():
        machine["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    elif not torch:
        machine["gpus"] = _nvidia_smi("name")
    if machine["gpus"]:
        machine["nvidia_driver"] = (_nvidia_smi("driver_version") or ["unknown"])[0]
    return machine


def _cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux; the platform's word elsewhere)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def _nvidia_smi(field: str) -> list[str]:
    """nvidia-smi's `field` (a --query-gpu name) of each GPU; none without nvidia-smi."""
    try:
        result = subprocess.run(
            ["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"],
            capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def _versions() -> dict[str, str]:
    versions = {}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_run_record(
    out_dir: str | Path,
    stage: str,
    params_path: str | Path,
    inputs: list[str | Path],
    device: str,
    known_digests: dict[str, str] | None = None,
    execution: dict[str, Any] | None = None,
    unverified: list[str | Path] | None = None,
    attention: str | None = None,
) -> None:
    """Write the two records of a finished stage into `out_dir`.

    `run.yaml`, what produced the stage's outputs: the sha256 of params.yaml and of each input
    file (by `recorded_path`), package versions, the device and the host's Python and
    architecture. It is a DVC output: two runs from the same inputs in the same environment
    write it byte for byte, so `dvc.lock` holds the same hash for it.

    `execution.yaml` (EXECUTION_RECORD), how this run went: when it finished, the git commit it
    ran at, the machine it ran on (`machine_record`), `execution` (seconds, throughput, the step
    it resumed from, the processes) and the sha256 of the run.yaml it goes with (`belongs_to`:
    DVC may later restore other outputs beside it). It is no DVC output and .dvcignore hides it,
    so that neither `dvc.lock` nor a stage depending on the folder sees values that differ from
    run to run; metrics.json holds results only.

    `known_digests` (str(path) -> sha256) are the inputs the stage has hashed already; only the
    others are read again. `unverified` names the weights files among the inputs that record
    no content digest to check them by (fourds.models.weights: a file from elsewhere), listed
    as `unverified_inputs`. `attention` is the attention backend that ran (a stage that runs a
    model; fourds.runtime.setup_runtime may replace the params' choice). Also writes
    `operative.gin`, gin's record of what the stage constructed (fourds.config.operative).

    Raises:
        ParamsChangedError: inside a stage, params.yaml no longer holds the bytes it held as
            the stage started (fourds.config.guard.params_digest); nothing is written.
    """
    out_dir = Path(out_dir)
    params_sha256 = params_digest(params_path)  # before anything is written
    with atomic_path(out_dir / "operative.gin") as partial:
        partial.write_text(operative_config())
    known = known_digests or {}
    record = {
        "stage": stage,
        "params_sha256": params_sha256,
        "inputs": {
            recorded_path(path): known.get(str(path)) or file_digest(path) for path in inputs
        },
        **({"unverified_inputs": [recorded_path(p) for p in unverified]} if unverified else {}),
        "packages": _versions(),
        "device": device,
        **({"attention": attention} if attention else {}),
        "host": {"python": platform.python_version(), "machine": platform.machine()},
    }
    with atomic_path(out_dir / "run.yaml") as partial:
        partial.write_text(yaml.safe_dump(record, sort_keys=False))
    run = {
        "stage": stage,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": git_commit(),
        "machine": machine_record(),
        **(execution or {}),
        "run_record_sha256": file_digest(out_dir / "run.yaml"),
    }
    with atomic_path(out_dir / EXECUTION_RECORD) as partial:
        partial.write_text(yaml.safe_dump(run, sort_keys=False))


def input_digests(paths: list[str | Path]) -> dict[str, str]:
    """str(path) -> sha256 of each input file, taken before a stage reads it: the digests its
    run record names, and `check_inputs_unchanged` compares with the files after the reading."""
    return {str(path): file_digest(path) for path in paths}


def check_inputs_unchanged(digests: dict[str, str]) -> None:
    """Raise ReaderError naming the first input whose bytes are no longer those `digests`
    hashed before the stage read it (a file replaced while the stage ran: what it computed
    may mix both, so nothing is recorded)."""
    for path, digest in digests.items():
        if file_digest(path) != digest:
            raise ReaderError(
                f"{path} changed while the stage read it (sha256 {digest[:12]} before): nothing "
                "was recorded; run the stage again"
            )


class PartTimer:
    """Wall seconds per named part of a stage (its execution record's `<part>_seconds`), summed
    over every time the part runs. The parts timed end on the host (a loss read, scores copied
    back), so a GPU's queued work is inside them."""

    def __init__(self) -> None:
        self._seconds: defaultdict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self._seconds[name] += time.perf_counter() - started

    def seconds(self) -> dict[str, float]:
        """{"<part>_seconds": seconds} for every part timed."""
        return {f"{name}_seconds": round(value, 2) for name, value in self._seconds.items()}


def recorded_path(path: str | Path) -> str:
    """`path` as run.yaml names it: relative to the working directory when it lies under it (DVC
    runs every stage from the repository root; a launcher may hand a stage absolute paths), so
    that a clone elsewhere writes the same record. URLs and other paths stay as given."""
    text = str(path)
    if "://" in text or not os.path.isabs(text):
        return text
    here = Path.cwd()
    return os.path.relpath(text, here) if Path(text).is_relative_to(here) else text


def belongs_to(stage_dir: str | Path) -> bool:
    """Whether `stage_dir`'s execution record describes the run that wrote its run.yaml (DVC
    restores outputs from its cache without running the stage, and leaves an older
    execution.yaml beside them)."""
    stage_dir = Path(stage_dir)
    execution, record = stage_dir / EXECUTION_RECORD, stage_dir / "run.yaml"
    if not (execution.is_file() and record.is_file()):
        return False
    written = yaml.safe_load(execution.read_text()) or {}
    return written.get("run_record_sha256") == file_digest(record)
