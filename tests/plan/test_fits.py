"""A pretraining step that the planner's memory model puts over the memory it runs in is refused
by the pretrain stage, in one line naming the clip, the batch and the bound, before anything is
written or run (curate.clip_frames=2048 passed, and the pretrain stage sat at step 0); the
pinned params, the ladders and the tests' params fit."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from fourds.config import load_params
from fourds.config.compose import ladder_params
from fourds.plan import machine
from fourds.plan.fits import check_pretraining_fits
from tests.conftest import REPO_ROOT, run_fourds
from tests.train.conftest import write_tiny_params

HOST = 16 << 30  # the host memory these tests give the machine
LONG = ["curate.clip_frames=2048", "curate.pretrain_frames=8192"]  # 29.2 GiB at cpu_s


@pytest.fixture
def host(monkeypatch):
    monkeypatch.setattr(machine, "host_memory", lambda: HOST)


def test_a_clip_too_long_for_the_machine_is_refused_before_anything_is_written(
    host, tmp_path, capsys
):
    out = tmp_path / "params.yaml"
    experiments = f"--experiments {REPO_ROOT / 'experiments'}"
    assert run_fourds(f"fourds params {' '.join(LONG)} {experiments} --out {out}") == 0
    capsys.readouterr()
    stage = tmp_path / "pretrain"
    assert run_fourds(f"fourds pretrain --params {out} --scale cpu_s --out {stage}") == 2
    error = capsys.readouterr().err
    assert error.startswith(
        "fourds pretrain: error: curate.clip_frames=2048 x curate.resolution=64 at "
        "pretrain.batch_size=16: a pretraining step of models.cpu_s (16 clips of 2048x64x64 a "
        "pass in a process) takes 29.2 GiB by the planner's memory model (fourds.plan.memory), "
        "over the 16.0 GiB of host memory here (runtime.device='cpu'); lower one of them"
    )
    assert error.count("\n") == 1 and not stage.exists()


def test_a_clip_that_fits_passes(host, tmp_path, capsys):
    out = tmp_path / "params.yaml"
    experiments = f"--experiments {REPO_ROOT / 'experiments'}"
    fitting = "curate.clip_frames=256 curate.pretrain_frames=1024"  # 4.8 GiB at cpu_l
    assert run_fourds(f"fourds params {fitting} {experiments} --out {out}") == 0
    check_pretraining_fits(load_params(str(out)))


def test_the_pinned_params_the_ladders_and_the_tests_params_fit(host, tmp_path):
    check_pretraining_fits(load_params(str(REPO_ROOT / "params.yaml")))
    for device in ("cpu", "cuda"):
        check_pretraining_fits(
            load_params(str(write_tiny_params(tmp_path / f"{device}.yaml", device)))
        )
    for params in ladder_params(REPO_ROOT / "experiments"):
        if params.ladder.name != "4ds":  # composed and planned in tests/test_plan.py
            check_pretraining_fits(params)


# In a fresh process, as it is or after a fake tensor's backward pass here (autograd's device
# threads started): the check and a readout stage's memory plan (fake passes both); then, where
# this process's forks can run autograd at all, a forked job's backward pass (a readout's seeds).
FORKS_AFTER = """
import sys
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from fourds.config import load_params
from fourds.evaluate.forked import side_by_side
from fourds.plan.evaluation import readout_memory
from fourds.plan.fits import check_pretraining_fits

def job():
    x = torch.ones(2, requires_grad=True)
    (x * x).sum().backward()
    return x.grad.tolist()

if sys.argv[1] == "after_fake_autograd":
    with FakeTensorMode():
        torch.ones(1, requires_grad=True).sum().backward()
params = load_params("params.yaml")
scale = params.ladder.scales[0]
check_pretraining_fits(params, [scale])  # as `fourds pretrain --scale` checks its scale
readout_memory(params.pretraining(scale), params.readout, params.readouts, 1)
print("checked")
if sys.argv[1] == "as_it_is":
    print(side_by_side([job]))
"""


@pytest.mark.parametrize("before", ["as_it_is", "after_fake_autograd"])
def test_the_planners_fake_passes_leave_autograd_to_the_processes_a_stage_forks(before):
    result = subprocess.run(
        [sys.executable, "-c", FORKS_AFTER, before], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    forked = ["[[2.0, 2.0]]"] if before == "as_it_is" else []
    assert result.stdout.splitlines() == ["checked", *forked]


def test_a_process_has_its_gpu_or_its_share_of_the_host(host, monkeypatch):
    monkeypatch.setattr(machine.torch.cuda, "is_available", lambda: False)
    params = load_params(str(REPO_ROOT / "params.yaml"))
    cpu, launcher = params.runtime, params.launcher
    assert machine.process_memory(cpu, launcher).bytes == HOST
    torchrun = dataclasses.replace(launcher, kind="torchrun", nproc_per_node=4)
    shared = machine.process_memory(cpu, torchrun)
    assert shared.bytes == HOST // 4 and "over its launcher.nproc_per_node=4" in shared.where
    slurm = dataclasses.replace(torchrun, kind="slurm", mem_gb=64, time_minutes=60)
    assert machine.process_memory(cpu, slurm).bytes == 16 << 30
    cuda = dataclasses.replace(cpu, device="cuda")
    for runtime in (cuda, dataclasses.replace(cpu, device="auto")):
        bound = machine.process_memory(runtime, slurm)
        assert bound.on_gpu == (runtime.device == "cuda")
    bound = machine.process_memory(cuda, slurm)  # none visible: the largest GPU planned for
    assert bound.bytes == 143771 << 20 and "H200 SXM 141GB" in bound.where


def test_the_host_memory_is_the_machines_or_its_cgroups(monkeypatch, tmp_path):
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = tmp_path / "memory.max"
    monkeypatch.setattr(machine, "CGROUP_LIMITS", (str(limit), str(tmp_path / "none")))
    assert machine.host_memory() == physical  # no cgroup file
    limit.write_text("max\n")  # no limit
    assert machine.host_memory() == physical
    limit.write_text(f"{1 << 30}\n")
    assert machine.host_memory() == min(physical, 1 << 30)
