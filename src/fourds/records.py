"""The run record every stage leaves behind: what produced its outputs."""

from __future__ import annotations

import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from fourds.atomic import atomic_path, file_digest
from fourds.config.operative import operative_config

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


def _git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip()


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
) -> None:
    """Write `run.yaml` into `out_dir`: what produced the stage's outputs.

    Records the git commit, the sha256 of params.yaml, the sha256 of each input file,
    package versions, the device and the host. `known_digests` (str(path) -> sha256) are the
    inputs the stage has hashed already; only the others are read again. `execution` holds
    what describes this run and not its results (seconds, throughput, the step it resumed
    from, the processes): it lives here rather than in metrics.json, so that a regeneration
    that reproduces the results leaves every metrics file byte-identical (`dvc metrics diff`
    compares them). Also writes `operative.gin`, gin's record of what the stage constructed
    (fourds.config.operative).
    """
    with atomic_path(Path(out_dir) / "operative.gin") as partial:
        partial.write_text(operative_config())
    known = known_digests or {}
    record = {
        "stage": stage,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": _git_commit(),
        "params_sha256": file_digest(params_path),
        "inputs": {str(path): known.get(str(path)) or file_digest(path) for path in inputs},
        "packages": _versions(),
        "device": device,
        "host": {"python": platform.python_version(), "machine": platform.machine()},
        "execution": execution or {},
    }
    with atomic_path(Path(out_dir) / "run.yaml") as partial:
        partial.write_text(yaml.safe_dump(record, sort_keys=False))
