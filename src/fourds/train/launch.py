"""Launchers: the same `fourds pretrain` command runs in place, under torchrun, or on Slurm.

`launcher.kind` in params.yaml chooses; the DVC stage's command never changes. A launcher
starts the same command line (`python -m fourds.cli <argv>`) in each process; a launched
process carries FOURDS_LAUNCHED=1 in its environment and runs the work itself:

    local     run in this process (also what every process started by a launcher does)
    torchrun  re-run this command under `python -m torch.distributed.run` with nnodes x
              nproc_per_node processes and wait for it
    slurm     submit this command with submitit as one job of nnodes x nproc_per_node tasks
              (one per GPU), each task joining the process group from Slurm's environment,
              and wait for it, so that the DVC stage ends when the job does; a job that
              reaches launcher.time_minutes requeues itself (up to launcher.requeues times)
              and its command resumes from the run's last checkpoint
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fourds.config import ConfigError, LauncherConfig

LAUNCHED = "FOURDS_LAUNCHED"


def launched_here(cfg: LauncherConfig) -> bool:
    """True when this process should do the work itself rather than launch it."""
    return cfg.kind == "local" or LAUNCHED in os.environ or "LOCAL_RANK" in os.environ


def fourds_command(argv: list[str]) -> list[str]:
    """The command line that runs `fourds <argv>` with this Python."""
    return [sys.executable, "-m", "fourds.cli", *argv]


def torchrun_command(argv: list[str], cfg: LauncherConfig) -> list[str]:
    """`python -m torch.distributed.run ... -m fourds.cli <argv>` for the launcher params."""
    command = [sys.executable, "-m", "torch.distributed.run"]
    command += ["--nnodes", str(cfg.nnodes), "--nproc-per-node", str(cfg.nproc_per_node)]
    if cfg.nnodes == 1:
        command.append("--standalone")
    else:
        command += ["--rdzv-backend", "c10d", "--rdzv-endpoint", cfg.rdzv_endpoint]
    return [*command, "-m", "fourds.cli", *argv]


@dataclasses.dataclass(frozen=True)
class SlurmTask:
    """What each Slurm task runs: the command line `fourds <argv>` as one rank of the job's
    process group (rank, world size and rendezvous exported from Slurm's environment)."""

    argv: tuple[str, ...]

    def __call__(self) -> None:
        import submitit

        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        environment = {**os.environ, LAUNCHED: "1"}
        code = subprocess.run(fourds_command(list(self.argv)), env=environment).returncode
        if code:
            raise RuntimeError(f"fourds {' '.join(self.argv)} exited with status {code}")

    def checkpoint(self) -> Any:
        """What submitit runs when Slurm signals the time limit: requeue the same command,
        which resumes from the run's last checkpoint (fourds.train.pretrain)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def submit_slurm(argv: list[str], cfg: LauncherConfig, log_dir: Path):
    """Submit `fourds <argv>` as a Slurm job; returns the submitit job without waiting."""
    try:
        import submitit
    except ImportError:
        raise ConfigError(
            "launcher.kind='slurm' needs submitit: pip install 'fourds[slurm]'"
        ) from None
    executor = submitit.SlurmExecutor(folder=log_dir, max_num_timeout=cfg.requeues)
    options = {
        "job_name": f"fourds-{argv[0]}",
        "nodes": cfg.nnodes,
        "ntasks_per_node": cfg.nproc_per_node,
        "gpus_per_node": cfg.gpus_per_node or None,
        "cpus_per_task": cfg.cpus_per_task or None,
        "mem": f"{cfg.mem_gb}GB" if cfg.mem_gb else None,
        "time": cfg.time_minutes,
        "partition": cfg.partition or None,
        "account": cfg.account or None,
    }
    executor.update_parameters(**{name: value for name, value in options.items() if value})
    return executor.submit(SlurmTask(tuple(argv)))


def launch(argv: list[str], cfg: LauncherConfig, log_dir: Path) -> int:
    """Run `fourds <argv>` under the launcher `cfg` and wait; returns its exit status.

    Args:
        argv: the subcommand and its arguments, with absolute paths.
        log_dir: where the Slurm job's logs go.
    """
    environment = {**os.environ, LAUNCHED: "1"}
    if cfg.kind == "torchrun":
        return subprocess.run(torchrun_command(argv, cfg), env=environment).returncode
    job = submit_slurm(argv, cfg, log_dir)
    print(f"fourds {argv[0]}: submitted Slurm job {job.job_id}; logs in {log_dir}", flush=True)
    try:
        job.results()
    except Exception as error:  # submitit re-raises the task's failure here
        print(f"fourds {argv[0]}: Slurm job {job.job_id} failed: {error}", file=sys.stderr)
        return 1
    return 0
