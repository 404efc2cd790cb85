"""A command's start: its heavy libraries imported with Python's cyclic collector paused."""

from __future__ import annotations

import contextlib
import gc
import importlib
import sys
from collections.abc import Iterable, Iterator

# What the commands that run models import first: torch, and torch._dynamo, which torch.optim
# imports when an optimizer is made (`add_param_group` is wrapped to keep dynamo out of it)
TORCH = ("torch",)
TRAINING = ("torch", "torch._dynamo")


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off inside (as it was, after). Importing torch makes some
    300k objects that live as long as the process; while they arrive, each of the collector's
    full passes traverses all of those already there (~0.5 CPU-seconds in all)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def import_frozen(modules: Iterable[str]) -> None:
    """Import `modules` with the collector paused, then freeze what is alive (`gc.freeze`: out
    of the collector's reach): the collections of the run, and the one at exit, no longer
    traverse torch's objects either. A stage process spends ~1.7 fewer CPU-seconds starting.
    Objects made afterwards are collected as usual; the few cycles the imports left behind stay
    until exit (~9k objects, ~1 MiB). Where every module is imported already (a process that
    called `fourds.cli.main` before) nothing happens.

    Where torch sees a GPU nothing is frozen (the imports still run paused): a frozen heap is
    tested on the CPU only, where it matters (a stage's start is a small share of a GPU stage),
    and it is not harmless everywhere: with torch's profiler around training steps,
    `benchmarks/gpu_step.py --quick` aborted at exit in 3 runs of 5 (no stage runs the
    profiler; the benchmarks import torch under `collector_paused` alone).
    """
    missing = [module for module in modules if module not in sys.modules]
    if not missing:
        return
    with collector_paused():
        for module in missing:
            importlib.import_module(module)
        freeze_where_no_gpu()


def freeze_where_no_gpu() -> None:
    """`gc.freeze()`, unless torch is imported and sees a GPU (import_frozen's docstring)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():  # as fourds.runtime asks it later
        gc.freeze()
