"""experiments/launcher/pretrain.sbatch: the pretrain stage's command in a Slurm job submitted by
hand, requeued near its time limit. Stand-ins for sbatch, srun, scontrol and torchrun record
what the script runs; the slow test runs it under the real torchrun and resumes it."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, doc_blocks, doc_commands
from tests.train.conftest import write_tiny_params

SCRIPT = "experiments/launcher/pretrain.sbatch"
SECTION = "Submitting the stage yourself with sbatch"
JOB_ID = "4242"

RECORD = """
import json, os, sys
def record(tool, argv):
    with open(os.path.join(os.environ["STANDIN_LOG"], tool + ".jsonl"), "a") as log:
        log.write(json.dumps(argv) + "\\n")
"""
# sbatch: the #SBATCH lines, then the command line's options; Slurm's variables; bash runs the
# script in place of this process (its pid is the batch shell's)
SBATCH = """
args = sys.argv[1:]
script, options = args[-1], {}
lines = [line.split()[1] for line in open(script) if line.startswith("#SBATCH ")]
for option in lines + args[:-1]:
    name, _, value = option.partition("=")
    options[name] = value
record("sbatch", options)
exported = options.get("--export", "ALL").split(",")
assert exported[0] == "ALL", exported
env = dict(os.environ, **dict(pair.split("=", 1) for pair in exported[1:]))
nodes = int(options["--nodes"])
default_nodes = ",".join(f"node{n:02d}" for n in range(1, nodes + 1))
env.update(
    SLURM_JOB_ID=os.environ["STANDIN_JOB_ID"],
    SLURM_JOB_NUM_NODES=str(nodes),
    SLURM_GPUS_PER_NODE=options["--gpus-per-node"],
    SLURM_JOB_NODELIST=os.environ.get("STANDIN_NODELIST", default_nodes),
    SLURM_SUBMIT_DIR=os.getcwd(),
)
os.execvpe("bash", ["bash", script], env)
"""
# srun: records, then runs the command after its options (its pid stays this one's), as srun
# runs it on each node; or, with STANDIN_SRUN=signal, sends the time limit's USR2 to the batch
# shell and runs on a second instead
SRUN = """
import signal, time
record("srun", sys.argv[1:])
if os.environ.get("STANDIN_SRUN") == "signal":
    os.kill(os.getppid(), signal.SIGUSR2)
    time.sleep(1)
else:
    with open(os.path.join(os.environ["STANDIN_LOG"], "srun.pid"), "w") as handle:
        handle.write(str(os.getpid()))
    start = next(n for n, arg in enumerate(sys.argv) if n and not arg.startswith("-"))
    os.execvp(sys.argv[start], sys.argv[start:])
"""
SCONTROL = """
record("scontrol", sys.argv[1:])
if sys.argv[1:3] == ["show", "hostnames"]:
    print("\\n".join(sys.argv[3].split(",")))
"""
TORCHRUN = """
record("torchrun", sys.argv[1:])
if os.environ.get("STANDIN_TORCHRUN") == "exec":
    os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", *sys.argv[1:]])
"""
# fourds: `python -m fourds.cli`; or, with STANDIN_FOURDS=hold, the same command in this
# process, where each rank, once its first checkpoint is saved, writes <log>/held.<rank> and
# waits there, training no further, until it is ended (a job step that the time limit's
# signal finds still training, however fast the machine)
FOURDS = """
if os.environ.get("STANDIN_FOURDS") == "hold":
    import time
    from fourds import cli
    from fourds.train import pretrain

    def holding(checkpoint):
        def hold(training, *args):
            checkpoint(training, *args)
            if training.last_good is not None:
                held = os.path.join(os.environ["STANDIN_LOG"], "held." + os.environ["RANK"])
                open(held, "w").close()
                while True:
                    time.sleep(60)
        return hold

    pretrain.maybe_checkpoint = holding(pretrain.maybe_checkpoint)
    sys.exit(cli.main(sys.argv[1:]))
os.execv(sys.executable, [sys.executable, "-m", "fourds.cli", *sys.argv[1:]])
"""


def stand_ins(root: Path) -> dict[str, str]:
    """A folder of stand-in tools under `root` and the environment that puts them first on PATH;
    each tool appends its argv to <root>/log/<tool>.jsonl."""
    bin_dir, log = root / "bin", root / "log"
    bin_dir.mkdir()
    log.mkdir()
    tools = {"sbatch": SBATCH, "srun": SRUN, "scontrol": SCONTROL, "torchrun": TORCHRUN}
    for name, body in {**tools, "fourds": FOURDS}.items():
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n{RECORD}{body}")
        path.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "FOURDS_LAUNCHED")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env.update(STANDIN_LOG=str(log), STANDIN_JOB_ID=JOB_ID)
    return env


def records(root: Path, tool: str) -> list:
    path = root / "log" / f"{tool}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def repository(root: Path) -> Path:
    """A folder to submit from, holding the repository's experiments/ (the script)."""
    work = root / "work"
    work.mkdir()
    (work / "experiments").symlink_to(REPO_ROOT / "experiments")
    return work


def stage_command(scale: str) -> list[str]:
    """The pretrain stage's command in dvc.yaml, for `scale`."""
    command = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]["pretrain"]["do"]
    return shlex.split(command["cmd"].replace("${item}", scale))


def sbatch_lines() -> dict[str, str]:
    lines = (REPO_ROOT / SCRIPT).read_text().splitlines()
    options = [line.split()[1] for line in lines if line.startswith("#SBATCH ")]
    return dict(option.partition("=")[::2] for option in options)


def test_the_script_is_bash_and_asks_slurm_for_a_warning_and_a_requeue():
    syntax = subprocess.run(["bash", "-n", REPO_ROOT / SCRIPT], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    options = sbatch_lines()
    assert re.fullmatch(r"B:USR2@\d+", options["--signal"])  # to the batch shell, before the end
    assert "--requeue" in options and options["--open-mode"] == "append"
    assert not options["--output"].startswith("runs/")  # the stage's folder holds fourds' files
    assert options["--ntasks-per-node"] == "1"  # one torchrun per node


def test_the_lines_the_page_shows_are_the_script_s():
    (shown,) = [
        b.text
        for b in doc_blocks("docs/pretraining.md")
        if b.section == SECTION and b.language == "text"
    ]
    script = (REPO_ROOT / SCRIPT).read_text().splitlines()
    for line in shown.splitlines():
        assert line in script, line


def test_the_doc_sbatch_commands_run_the_stage_command(tmp_path):
    """Each command of the page, as written: one torchrun per node runs exactly the command
    dvc.yaml gives the stage, with the job's nodes, its GPUs per node and a rendezvous on its
    first node."""
    env, work = stand_ins(tmp_path), repository(tmp_path)
    commands = doc_commands(SECTION, 1)
    shapes = []
    for command in commands:
        result = subprocess.run(
            shlex.split(command), cwd=work, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
        options = records(tmp_path, "sbatch")[-1]
        exported = dict(pair.split("=", 1) for pair in options["--export"].split(",")[1:])
        torchrun = records(tmp_path, "torchrun")[-1]
        assert records(tmp_path, "srun")[-1] == ["--kill-on-bad-exit=1", "torchrun", *torchrun]
        split = torchrun.index("--no-python")
        assert torchrun[split + 1 :] == stage_command(exported["SCALE"])
        launch = dict(option.split("=", 1) for option in torchrun[:split])
        assert launch["--rdzv-backend"] == "c10d" and launch["--rdzv-id"] == JOB_ID
        assert launch["--rdzv-endpoint"] == "node01:29500"
        shapes.append((launch["--nnodes"], launch["--nproc-per-node"]))
    assert shapes == [("1", "8"), ("1", "1"), ("4", "8")]  # one node, one GPU, four nodes
    assert not [argv for argv in records(tmp_path, "scontrol") if argv[0] == "requeue"]


@pytest.mark.parametrize("restarts", [0, 2, 3])
def test_near_the_time_limit_the_job_requeues_itself_at_most_requeues_times(tmp_path, restarts):
    """USR2 to the batch shell: `scontrol requeue` unless the job was requeued REQUEUES (3)
    times already; either way the script waits for srun (Slurm ends it on a requeue)."""
    env, work = stand_ins(tmp_path), repository(tmp_path)
    env.update(STANDIN_SRUN="signal", SLURM_RESTART_COUNT=str(restarts))
    command = ["sbatch", "--export=ALL,SCALE=4ds_b", SCRIPT]
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr  # srun's status, not the signal's
    requeues = [argv for argv in records(tmp_path, "scontrol") if argv[0] == "requeue"]
    assert requeues == ([["requeue", JOB_ID]] if restarts < 3 else [])
    assert ("requeueing job" in result.stdout) == (restarts < 3)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def checkpoint_steps(out: Path) -> list[int]:
    return sorted(int(path.name[5:]) for path in out.glob("resume/*/step-*"))


@pytest.mark.slow
def test_a_requeued_job_resumes_the_stage_from_its_last_checkpoint(tiny_shards, tmp_path):
    """The script under the real torchrun (2 processes on the CPU): USR2 after the first
    checkpoint, Slurm's SIGTERM to the job step, then the requeued job: it resumes.

    The first job's processes wait after that checkpoint (STANDIN_FOURDS=hold) rather than
    train on, so the signals find the job step running without a schedule long enough to
    outlast them, and the requeued job trains only the steps after it."""
    env, work = stand_ins(tmp_path), repository(tmp_path)
    write_tiny_params(
        work / "params.yaml", steps=10, log_every=5, checkpoint_every=5, keep_checkpoints=2
    )
    (work / "runs" / "curate").mkdir(parents=True)
    (work / "runs" / "curate" / "shards").symlink_to(tiny_shards)
    env.update(STANDIN_TORCHRUN="exec", STANDIN_NODELIST="localhost")
    command = ["sbatch", "--gpus-per-node=2", f"--export=ALL,SCALE=tiny,PORT={free_port()}", SCRIPT]
    out = work / "runs" / "pretrain" / "tiny"
    held = [tmp_path / "log" / f"held.{rank}" for rank in range(2)]

    log = open(tmp_path / "first.log", "w")
    job = subprocess.Popen(
        command,
        cwd=work,
        env={**env, "STANDIN_FOURDS": "hold"},
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not all(path.exists() for path in held):  # both ranks saved step 5, and wait
            assert job.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        job.send_signal(signal.SIGUSR2)  # the time limit is near
        while not records(tmp_path, "scontrol")[-1:] == [["requeue", JOB_ID]]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert job.poll() is None  # the script waits for the job step after requeueing
        step = int((tmp_path / "log" / "srun.pid").read_text())
        os.kill(step, signal.SIGTERM)  # Slurm ends the job step; torchrun ends its workers
        job.wait(timeout=120)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        log.close()
    assert not (out / "checkpoint.pt").exists()
    saved = max(checkpoint_steps(out))
    assert saved == 5

    env["SLURM_RESTART_COUNT"] = "1"  # the requeued job: the same script, the same command
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"resuming from .*\(step \d+\)", result.stdout)
    execution = yaml.safe_load((out / "execution.yaml").read_text())
    assert execution["processes"] == 2 and execution["resumed_from_step"] == saved
    assert (out / "checkpoint.pt").is_file()
