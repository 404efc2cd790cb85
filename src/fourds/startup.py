"""A command's start: its heavy libraries imported with Python's cyclic collector paused."""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Iterable

# What the commands that run models import first: torch, and torch._dynamo, which torch.optim
# imports when an optimizer is made (`add_param_group` is wrapped to keep dynamo out of it)
TORCH = ("torch",)
TRAINING = ("torch", "torch._dynamo")


def import_frozen(modules: Iterable[str]) -> None:
    """Import `modules` with the cyclic garbage collector paused, then freeze what is alive.

    Importing torch makes some 300k objects that live as long as the process (its classes,
    functions and operator tables). While they arrive, each of the collector's full passes
    traverses all of those already there, and at exit it traverses them once more; paused, then
    frozen (`gc.freeze`: out of the collector's reach), they cost no pass: a stage process spends
    ~1.7 fewer CPU-seconds starting. Objects made afterwards are collected as usual; the few
    cycles the imports left behind stay until exit (~9k objects, ~1 MiB). Where every module is
    imported already (a process that called `fourds.cli.main` before) nothing happens.
    """
    missing = [module for module in modules if module not in sys.modules]
    if not missing:
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        for module in missing:
            importlib.import_module(module)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
