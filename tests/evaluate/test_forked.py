"""Jobs side by side in forked processes, and functions in a process of their own
(fourds.evaluate.forked)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from fourds.errors import ConfigError, JobError
from fourds.evaluate.forked import own_process, side_by_side
from tests.conftest import REPO_ROOT


def test_each_job_runs_in_its_own_process_at_one_thread_and_returns_in_order():
    here = os.getpid()
    shared = torch.arange(6.0)  # the parent's memory, read in the children

    def job(index):
        return lambda: (index, os.getpid(), torch.get_num_threads(), shared[index] * 2)

    results = side_by_side([job(index) for index in range(3)])
    assert [index for index, *_ in results] == [0, 1, 2]
    assert len({pid for _, pid, *_ in results} | {here}) == 4
    assert all(threads == 1 for *_, threads, _ in results)
    assert [float(value) for *_, value in results] == [0.0, 2.0, 4.0]


AFTER_PARALLEL_WORK = """
import torch
from fourds.evaluate.forked import own_process, side_by_side

torch.set_num_threads(2)
work = lambda: float(torch.ones(2**20).exp().sum() + (torch.ones(256, 256) @ torch.ones(256)).sum())
work()  # a parallel region on two threads, here
print(side_by_side([work, work]), own_process(work)())
"""


def test_a_fork_after_parallel_work_here_runs_its_kernels():
    """A fork of a process that has run OpenMP's threads runs its kernels (at one thread)."""
    result = subprocess.run(
        [sys.executable, "-c", AFTER_PARALLEL_WORK], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    values = [float(value.strip("[],")) for value in result.stdout.split()]
    assert values == pytest.approx([2**20 * torch.e + 256 * 256] * 3, rel=1e-5)


COMPILED_BEFORE = """
import sys
import torch
from fourds.errors import JobError
from fourds.evaluate.forked import side_by_side
from tests.conftest import start_autograd

if sys.argv[1] == "started":
    start_autograd()  # as every test process does before its tests
torch.compile(lambda x: x + 1, backend="eager")(torch.ones(2))
torch.ones(1, requires_grad=True).sum().backward()
try:
    print(side_by_side([lambda: torch.ones(1, requires_grad=True).sum().backward()]))
except JobError as error:
    print("refused" if "fork-based multiprocessing" in str(error) else error)
"""


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU, autograd starts its threads")
@pytest.mark.parametrize(("before", "forks"), [("nothing", "refused"), ("started", "[None]")])
def test_autograd_started_before_a_compile_runs_in_this_process_s_forks(before, forks):
    """A torch.compile, then a backward pass: torch refuses autograd in the process's forks,
    unless autograd ran before the compile (tests/conftest.py's start_autograd)."""
    result = subprocess.run(
        [sys.executable, "-c", COMPILED_BEFORE, before],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [forks]


def failing():
    raise ValueError("no clips\nat all")


@own_process
def measured(scale: int) -> tuple[int, int]:
    """A function of its own process: (its pid, scale squared); fourds' own error for 0 and
    another for a negative scale."""
    if scale == 0:
        raise ConfigError("scale: 0 is not a scale")
    if scale < 0:
        raise ArithmeticError("negative\nscale")
    return os.getpid(), scale * scale


def test_an_own_process_function_runs_in_a_fork_and_raises_fourds_errors_as_they_are():
    pid, square = measured(3)
    assert pid != os.getpid() and square == 9
    with pytest.raises(ConfigError, match="^scale: 0 is not a scale$"):
        measured(0)
    with pytest.raises(JobError, match="^measured failed: ArithmeticError: negative scale \\(at "):
        measured(-1)


def test_an_own_process_function_runs_in_place_in_a_process_that_uses_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert measured(2) == (os.getpid(), 4)


def test_a_jobs_error_is_one_line_naming_the_job_the_childs_error_and_where():
    with pytest.raises(JobError) as raised:
        side_by_side([lambda: 1, failing], names=["seed 0", "seed 1"])
    message = str(raised.value)
    assert message.startswith("seed 1 failed: ValueError: no clips at all (at ")
    assert f"{__file__}:" in message and message.endswith(" in failing)") and "\n" not in message


class Unpicklable(Exception):
    def __init__(self, handle):
        super().__init__("a lock inside")
        self.handle = handle

    def __reduce__(self):
        raise TypeError("cannot pickle this")


def test_an_error_or_result_that_cannot_be_pickled_still_comes_back_as_one_error():
    def raises_unpicklable():
        raise Unpicklable(object())

    with pytest.raises(JobError, match="job 0 failed: Unpicklable: a lock inside"):
        side_by_side([raises_unpicklable])
    with pytest.raises(JobError, match="job 0 failed: its result cannot be sent back"):
        side_by_side([lambda: Unpicklable(1)])


def test_a_process_that_dies_without_a_result_is_one_error():
    with pytest.raises(JobError, match="seed 2 ended without a result \\(exit code 3\\)"):
        side_by_side([lambda: os._exit(3)], names=["seed 2"])
    with pytest.raises(JobError, match="killed by SIGKILL"):
        side_by_side([lambda: os.kill(os.getpid(), signal.SIGKILL)])


PARENT = """
import os, sys, time
from fourds.evaluate.forked import side_by_side

def forever():
    print(os.getpid(), flush=True)
    time.sleep(600)

side_by_side([forever, forever])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux parent-death signal")
def test_killing_the_parent_kills_its_jobs():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    children = [int(parent.stdout.readline()) for _ in range(2)]
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in children):
        time.sleep(0.1)
    assert not any(alive(pid) for pid in children)


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
