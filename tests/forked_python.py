"""`python ARGS` for the tests, in a fork of the test process where it can be.

A fresh interpreter spends ~3.5 CPU-seconds importing torch, torch._dynamo and fourds before a
benchmark's --quick run or a tiny pretraining starts its work; a fork of a test process has
them imported already. The script or module runs there as `python` runs it: as `__main__`,
with its argv, its folder (a module: the working directory) first on the path, in `cwd`; its
output is captured and its exit status returned, a traceback and 1 for an uncaught exception.

Where torch sees a GPU, the command runs in a fresh interpreter instead: a fork of a process
whose autograd has started a thread per GPU cannot run autograd (on a CPU-only machine
tests/conftest.py's `start_autograd` keeps the forks able to). In a fork, torch keeps what it
read from the environment when this process imported it (OMP_NUM_THREADS,
ATEN_CPU_CAPABILITY): tests that set those start their own interpreter.
"""

from __future__ import annotations

import os
import runpy
import select
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import NoReturn

import torch

# Where torch sees a GPU, a fork of a test process cannot run autograd (the module docstring)
FORKS_RUN_AUTOGRAD = not torch.cuda.is_available()


def run_python(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """`python *args` in `cwd`, as `subprocess.run(..., capture_output=True, text=True,
    timeout=timeout)` would return it (its args: the command as `python` would have run)."""
    command = [sys.executable, *args]
    if not FORKS_RUN_AUTOGRAD:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            _run_here(args, cwd, out.fileno(), err.fileno())
        status = _wait(pid, timeout, command)
        out.seek(0)
        err.seek(0)
        read = [stream.read().decode(errors="replace") for stream in (out, err)]
    return subprocess.CompletedProcess(command, status, *read)


def _wait(pid: int, timeout: float, command: list[str]) -> int:
    """The fork's exit status; past `timeout` seconds it is killed and TimeoutExpired raised."""
    handle = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([handle], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise subprocess.TimeoutExpired(command, timeout)
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    finally:
        os.close(handle)


def _run_here(args: list[str], cwd: Path, out: int, err: int) -> NoReturn:
    """The fork: its output to `out` and `err`, `args` run, and its exit (no cleanup of the test
    process it was forked from)."""
    status = 1
    try:
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (the fork's whole life)
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        os.chdir(cwd)
        status = _as_main(args)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _as_main(args: list[str]) -> int:
    """Run `python *args` in this process: a script's path or `-m module`, then its argv.
    Returns the exit status, as `sys.exit` would have given it."""
    try:
        if args[0] == "-m":
            sys.argv = args[1:]
            sys.path.insert(0, os.getcwd())
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(args)
            sys.path.insert(0, str(Path(args[0]).resolve().parent))
            runpy.run_path(args[0], run_name="__main__")
    except SystemExit as exit:
        if exit.code is None or isinstance(exit.code, int):
            return exit.code or 0
        print(exit.code, file=sys.stderr)
        return 1
    return 0
