"""Jobs run side by side in processes forked from this one, each at one torch thread: what two
CPU cores do faster than one process whose kernels share them (small matrix products and
elementwise work scale poorly across threads; docs/research/timings.md).

One thread, because torch's CPU thread pool is GNU OpenMP's, which keeps no state across a
fork: a fork of a process that has run a parallel region waits forever at its own first one
on more than one thread (at one, torch runs the region in the calling thread).

A forked process starts with this one's memory as it is (a readout's cached features are read,
not copied), so a job is any callable, not a picklable one; what it returns comes back pickled,
tensors as their bytes (torch's shared-memory handles would not outlive the process). A job
that fails comes back as its error's type, message and innermost frame (an exception object
need not pickle); on Linux each process dies with the one that forked it (a parent-death
signal), so a killed stage leaves none behind.

`own_process` runs a function in a forked process of its own, so that what it starts stays
there: a fake tensor's backward pass starts autograd's device threads, and torch refuses to run
autograd in a fork of a process that has them (a readout's seeds, side by side)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import multiprocessing
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import torch

from fourds.errors import EXPECTED_ERRORS, JobError

Result = TypeVar("Result")
PR_SET_PDEATHSIG = 1  # Linux prctl(2): the signal a process gets when its parent dies


def side_by_side(jobs: Sequence[Callable[[], Result]], names: Sequence[str] = ()) -> list[Result]:
    """Run every job at once, each in a forked process at one torch thread; their results in
    the jobs' order. `names` name the jobs in errors ("job <i>" by default).

    Raises:
        JobError: a job raised (the first in the jobs' order: its name, the error's type and
            message and where it was raised) or its process ended without a result (killed,
            or out of memory); the other processes are stopped.
    """
    names = list(names) or [f"job {index}" for index in range(len(jobs))]
    context = multiprocessing.get_context("fork")
    started = []
    try:
        for job in jobs:
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_run, args=(job, send, os.getpid()), daemon=True)
            process.start()
            send.close()  # the child holds the sending end
            started.append((process, receive))
        results = []
        for name, (process, receive) in zip(names, started, strict=True):
            try:
                succeeded, value = pickle.loads(receive.recv_bytes())
            except EOFError:  # it ended without sending
                process.join()
                ending = _ending(process.exitcode)
                raise JobError(f"{name} ended without a result ({ending})") from None
            process.join()
            if not succeeded:
                raise JobError(f"{name} failed: {value}")
            results.append(value)
        return results
    finally:  # a failure, or this process interrupted: none of the jobs outlives the call
        for process, _ in started:
            if process.is_alive():
                process.kill()
                process.join()


def own_process(function: Callable[..., Result]) -> Callable[..., Result]:
    """`function` run, each call, in a process forked from this one at one torch thread (its
    result pickled back): for the planner's fake-tensor passes, which run no kernels. In this
    process instead where a fork cannot run autograd (this one started autograd's device
    threads already: nothing is left to protect), or where this one uses CUDA (a fork of it
    cannot, and its autograd would start a thread on the GPU: a GPU stage, which forks no
    seeds). fourds' own errors (fourds.errors.EXPECTED_ERRORS) are raised here as they were
    there; any other comes back as JobError, naming the function."""

    @functools.wraps(function)
    def in_own_process(*args: Any, **kwargs: Any) -> Result:
        call = functools.partial(function, *args, **kwargs)
        if torch.cuda.is_initialized():
            return call()
        job = functools.partial(_where_autograd_runs, call)
        (outcome,) = side_by_side([job], [function.__qualname__])
        if outcome is None:
            return call()
        raised, value = outcome
        if raised:
            raise value
        return value

    return in_own_process


def _where_autograd_runs(call: Callable[[], Result]) -> tuple[bool, object] | None:
    """(False, call()) or (True, the fourds error it raised); None where this fork cannot run
    autograd (its parent started autograd's device threads)."""
    try:
        torch.ones(1, device="cpu", requires_grad=True).sum().backward()
    except RuntimeError:
        return None
    try:
        return False, call()
    except EXPECTED_ERRORS as error:
        return True, error


def _run(job: Callable[[], Result], send: Connection, parent: int) -> None:
    """The forked process: the job at one thread, its result or its error (as text) sent back;
    it dies with `parent`."""
    _die_with_parent(parent)
    torch.set_num_threads(1)
    try:
        outcome = (True, job())
    except Exception as error:  # said in the parent, in one line
        outcome = (False, _describe(error))
    try:
        payload = pickle.dumps(outcome)  # plain pickle: tensors as bytes, not shared memory
    except Exception as error:  # a result that does not pickle
        payload = pickle.dumps((False, f"its result cannot be sent back ({_describe(error)})"))
    send.send_bytes(payload)
    send.close()


def _describe(error: BaseException) -> str:
    """'<type>: <message> (at <file>:<line> in <function>)', the innermost frame's place."""
    frames = traceback.extract_tb(error.__traceback__)
    where = (
        f" (at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    )
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}{where}"


def _ending(exitcode: int | None) -> str:
    """How a process ended, from its exit code."""
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux; elsewhere nothing), and
    exit now if the parent is already gone."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)
