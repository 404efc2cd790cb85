"""Jobs run side by side in processes forked from this one, each at a given number of torch
threads: what two CPU cores do faster than one process whose kernels share them (small matrix
products and elementwise work scale poorly across threads; docs/research/timings.md).

A forked process starts with this one's memory as it is (a readout's cached features are read,
not copied), so a job is any callable, not a picklable one; what it returns comes back pickled,
tensors as their bytes (torch's shared-memory handles would not outlive the process).
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import TypeVar

import torch

Result = TypeVar("Result")


def side_by_side(jobs: Sequence[Callable[[], Result]], threads: int) -> list[Result]:
    """Run every job at once, each in a forked process at `threads` torch threads; their
    results in the jobs' order.

    Raises:
        the exception a job raised (the first in the jobs' order; the other processes are
        stopped), or RuntimeError for a process that ended without a result (killed, or out of
        memory).
    """
    context = multiprocessing.get_context("fork")
    started = []
    for job in jobs:
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_run, args=(job, send, threads), daemon=True)
        process.start()
        send.close()  # the child holds the sending end
        started.append((process, receive))
    results = []
    for process, receive in started:
        try:
            succeeded, value = pickle.loads(receive.recv_bytes())
        except EOFError:  # it ended without sending
            succeeded, value = False, None
        process.join()
        if not succeeded:
            for other, _ in started:
                other.terminate()
            raise value or RuntimeError(f"a forked job ended with exit code {process.exitcode}")
        results.append(value)
    return results


def _run(job: Callable[[], Result], send: Connection, threads: int) -> None:
    """The forked process: the job at `threads` threads, its result or exception sent back."""
    torch.set_num_threads(threads)
    try:
        outcome = (True, job())
    except Exception as error:  # raised again in the parent
        outcome = (False, error)
    send.send_bytes(pickle.dumps(outcome))  # plain pickle: tensors as bytes, not shared memory
    send.close()
