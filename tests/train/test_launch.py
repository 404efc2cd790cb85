"""Launchers: params alone choose local, torchrun or Slurm for the same pretrain command."""

from __future__ import annotations

import dataclasses
import os
import stat
import sys

import pytest
import yaml

from fourds.atomic import claim_output_directory
from fourds.cli import main
from fourds.config import ConfigError, LauncherConfig, Params
from fourds.config.compose import compose_params
from fourds.config.schema import parse
from fourds.train.launch import LAUNCHED, SlurmTask, launched_here, submit_slurm, torchrun_command
from tests.conftest import REPO_ROOT
from tests.train.conftest import CLI, run_pretrain, write_tiny_params


def launcher(name: str, **changes) -> LauncherConfig:
    raw = yaml.safe_load((REPO_ROOT / "experiments" / "launcher" / f"{name}.yaml").read_text())
    return parse(LauncherConfig, {**raw, **changes}, "launcher")


@pytest.mark.slow
def test_torchrun_launcher_runs_the_stage_command_as_two_processes(
    tiny_shards, tmp_path, monkeypatch
):
    """`fourds pretrain` starts torchrun, whose two processes train."""
    params = write_tiny_params(tmp_path / "params.yaml", steps=4)
    raw = yaml.safe_load(params.read_text())
    raw["launcher"] = dataclasses.asdict(launcher("torchrun"))
    params.write_text(yaml.safe_dump(raw))
    monkeypatch.delenv(LAUNCHED, raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    run_pretrain(CLI, params, tiny_shards, tmp_path / "out")
    execution = yaml.safe_load((tmp_path / "out" / "execution.yaml").read_text())
    assert execution["processes"] == 2


def test_torchrun_command_for_one_node_and_for_several():
    argv = ["pretrain", "--scale", "cpu_s"]
    single = torchrun_command(argv, launcher("torchrun", nproc_per_node=4))
    assert single[1:] == [
        "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "4", "--standalone",
        "-m", "fourds.cli", "pretrain", "--scale", "cpu_s",
    ]  # fmt: skip
    multi = torchrun_command(argv, launcher("torchrun", nnodes=2, rdzv_endpoint="node0:29500"))
    assert "--standalone" not in multi
    assert multi[multi.index("--rdzv-endpoint") + 1] == "node0:29500"


def test_launcher_params_are_checked():
    with pytest.raises(ConfigError, match="launcher.rdzv_endpoint is empty"):
        launcher("torchrun", nnodes=2)
    with pytest.raises(ConfigError, match="launcher.time_minutes=0"):
        launcher("slurm", time_minutes=0)
    with pytest.raises(ConfigError, match=r"launcher.kind='mpi' is not one of"):
        launcher("local", kind="mpi")


def test_processes_started_by_a_launcher_do_the_work_themselves(monkeypatch):
    monkeypatch.delenv(LAUNCHED, raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert launched_here(launcher("local"))
    assert not launched_here(launcher("slurm"))
    monkeypatch.setenv(LAUNCHED, "1")
    assert launched_here(launcher("slurm"))


def slurm_stand_ins(tmp_path, monkeypatch) -> None:
    """Stand-ins for `sbatch` and `srun` on PATH: the submission script is copied to
    tmp_path/submitted.sh, not queued."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(
        f'#!/bin/sh\ncp "$1" {tmp_path}/submitted.sh\necho "Submitted batch job 4242"\n'
    )
    srun = bin_dir / "srun"  # submitit checks that it is on a Slurm login node
    srun.write_text("#!/bin/sh\nexit 1\n")
    for tool in (sbatch, srun):
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_slurm_launcher_submits_the_job_the_params_describe(tmp_path, monkeypatch):
    slurm_stand_ins(tmp_path, monkeypatch)
    submitit = pytest.importorskip("submitit")

    executors = []
    real_executor = submitit.SlurmExecutor

    def recorded(*args, **kwargs):
        executors.append(real_executor(*args, **kwargs))
        return executors[-1]

    monkeypatch.setattr(submitit, "SlurmExecutor", recorded)
    cfg = launcher("slurm", partition="h100", account="vision", mem_gb=400)
    argv = ["pretrain", "--params", "/abs/params.yaml", "--scale", "4ds_b", "--out", "/abs/out"]
    job = submit_slurm(argv, cfg, tmp_path / "logs")

    assert job.job_id == "4242"
    script = (tmp_path / "submitted.sh").read_text()
    for line in (
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=8",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --cpus-per-task=12",
        "#SBATCH --time=4320",
        "#SBATCH --partition=h100",
        "#SBATCH --account=vision",
        "#SBATCH --mem=400GB",
        "#SBATCH --job-name=fourds-pretrain",
    ):
        assert line in script, line
    assert f"{sys.executable} -u -m submitit.core._submit" in script
    assert job.submission().function == SlurmTask(tuple(argv))
    # Slurm warns before the limit; the task then requeues itself as the same command
    assert "#SBATCH --signal=USR2@" in script
    assert job.submission().function.checkpoint().function == SlurmTask(tuple(argv))
    assert executors[-1].max_num_timeout == cfg.requeues == 3


def test_the_4ds_ladder_pins_a_torchrun_launch_of_8_processes_per_node():
    params = parse(Params, compose_params(["ladder=4ds"], REPO_ROOT / "experiments"))
    assert params.launcher.kind == "torchrun" and params.launcher.nproc_per_node == 8
    argv = ["pretrain", "--scale", "4ds_b", "--curated", "runs/curate/shards"]
    command = torchrun_command(argv, params.launcher)
    per_node = command.index("--nproc-per-node")
    assert command[per_node + 1] == "8" and "--standalone" in command
    assert command[-len(argv) - 2 :] == ["-m", "fourds.cli", *argv]
    checkpointed = [scale for scale in params.ladder.scales if params.pretrain.checkpoints(scale)]
    assert checkpointed == ["4ds_e", "4ds_j"]
    assert params.pretrain.precision == "bf16"


def test_a_slurm_submission_leaves_its_output_folder_for_the_job_to_claim(
    tiny_shards, tmp_path, monkeypatch
):
    """submitit writes into <out>/slurm before the job starts: the folder is fourds' own by
    then, so the job's processes may write their outputs there. The submission is a stand-in
    that writes what submitit writes first."""
    from fourds.stages import pretrain as pretrain_stage

    def submit(argv, launcher_config, slurm_dir):
        slurm_dir.mkdir(parents=True)
        (slurm_dir / "submission.sh").write_text("#!/bin/bash\n")
        return 0

    monkeypatch.setattr(pretrain_stage, "launch", submit)
    monkeypatch.delenv(LAUNCHED, raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    params = write_tiny_params(tmp_path / "params.yaml")
    raw = yaml.safe_load(params.read_text())
    raw["launcher"] = dataclasses.asdict(launcher("slurm", partition="cpu"))
    params.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    argv = ["pretrain", "--params", str(params), "--scale", "tiny", "--curated", str(tiny_shards)]
    assert main([*argv, "--out", str(out)]) == 0
    claim_output_directory(out, (tiny_shards,))  # what the job's pretraining does first
