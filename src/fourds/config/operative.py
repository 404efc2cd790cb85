"""Each stage's operative.gin: gin's record of what the stage actually constructed.

The constructors whose defaults shape the results are gin configurables: the encoder
(`VideoViT`), the MAE and its decoder (`MaskedAutoencoder`, `MAEDecoder`), the readout heads
(`AttentionReadout`, `CorrelationPoseReadout`), the optimizer builders (`adamw`,
`readout_optimizer`), the pretraining loader (`pretrain_loader`) and the cast of a frozen model
(`frozen`). params.yaml stays the one place a user sets values: where fourds builds one of them
from params, it calls `configured(fn, {parameter: params value}, ...)`. Inside a stage run
(a function decorated with `stage`), `configured` binds those values into gin and lets gin
supply them, and gin records every value the configurable took, the code's defaults among
them; `operative_config` returns that record, which fourds.records writes as `operative.gin`
next to `run.yaml`. So a default changed in code shows in operative.gin while params.yaml
stays as it was. Outside a stage (tests, `fourds plan`, benchmarks) `configured` passes the
values straight to the call and leaves gin alone: the same call either way.

A params section passed whole (a `ModelConfig`) is bound field by field to its schema
dataclass, registered with gin as `fourds.<Class>`, in the scope of the configurable it goes
to, and the parameter refers to it:

    VideoViT.cfg = @VideoViT/ModelConfig()
    VideoViT.convention = 'fourds'
    VideoViT.frames = 8
    VideoViT/ModelConfig.width = 64

`load_operative` reads a file back: configurable -> {parameter: value}.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import gin
from gin.config_parser import BindingStatement, ConfigParser, ParserDelegate

from fourds.config import schema
from fourds.config.guard import guarded

SECTION_CLASSES = (
    schema.LadderConfig,
    schema.ModelConfig,
    schema.RuntimeConfig,
    schema.LauncherConfig,
    schema.CurateConfig,
    schema.MAEConfig,
    schema.PretrainConfig,
    schema.ReadoutConfig,
    schema.SourceConfig,
    schema.TaskReadoutConfig,
    schema.FidelityConfig,
)
for _section in SECTION_CLASSES:
    gin.external_configurable(_section, module="fourds")

HEADER = (
    "# operative.gin: what this fourds stage constructed, as gin recorded it: every value each\n"
    "# configurable took, bound from params.yaml or the code's default. Read it back with\n"
    "# fourds.config.operative.load_operative.\n"
)
Result = TypeVar("Result")
_in_stage = False


def stage(run: Callable[..., Result]) -> Callable[..., Result]:
    """Decorate a stage's `run`, which takes its output folder `out_dir` and its params file
    `params_path`: gin starts it empty, `configured` records into it while it runs (its run
    record writes `operative_config()`), and it is emptied again after; the params file is
    held unchanged while it runs (fourds.config.guard.guarded)."""
    signature = inspect.signature(run)

    @functools.wraps(run)
    def recorded(*args: Any, **kwargs: Any) -> Result:
        global _in_stage
        arguments = signature.bind(*args, **kwargs).arguments
        gin.clear_config()
        _in_stage = True
        try:
            with guarded(arguments["params_path"], arguments["out_dir"]):
                return run(*args, **kwargs)
        finally:
            _in_stage = False
            gin.clear_config()

    return recorded


def _bind(selector: str, scope: str, values: Mapping[str, Any]) -> None:
    """Bind `values` to the parameters of `selector`; a dataclass value by reference to its
    schema class's configurable in `scope`, its fields bound there."""
    for parameter, value in values.items():
        if dataclasses.is_dataclass(value):
            section = f"{scope}/fourds.{type(value).__name__}"
            gin.parse_config(f"{selector}.{parameter} = @{section}()")
            fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
            _bind(section, scope, fields)
        else:
            gin.bind_parameter(f"{selector}.{parameter}", value)


def configured(fn: Callable[..., Result], values: Mapping[str, Any], *args, **kwargs) -> Result:
    """`fn(*args, **kwargs, **values)`, where `fn` is a gin configurable registered under its
    own name and `values` are the params values it is built with.

    Inside a stage run, `values` are bound into gin and gin supplies them, so the operative
    config records them with the defaults `fn` used; elsewhere they are passed directly.
    """
    if not _in_stage:
        return fn(*args, **kwargs, **values)
    _bind(fn.__name__, fn.__name__, values)
    return fn(*args, **kwargs)


def operative_config() -> str:
    """The operative.gin of the stage running now: `HEADER`, then gin's operative config
    (outside a stage run, where gin records nothing for fourds, `HEADER` alone)."""
    return HEADER + ("\n" + gin.operative_config_str() if _in_stage else "")


class _Reader(ParserDelegate):
    """Keeps references and macros as the text they were written as."""

    def configurable_reference(self, scoped_configurable_name: str, evaluate: bool) -> str:
        return f"@{scoped_configurable_name}{'()' if evaluate else ''}"

    def macro(self, macro_name: str) -> str:
        return f"%{macro_name}"


def load_operative(path: str | Path) -> dict[str, dict[str, Any]]:
    """The bindings of an `operative.gin`: "[scope/]configurable" -> {parameter: value};
    references stay text ("@VideoViT/ModelConfig()").

    Raises:
        ValueError: the file does not start with `HEADER` (not written by fourds).
    """
    text = Path(path).read_text()
    if not text.startswith(HEADER):
        raise ValueError(f"{path}: no operative.gin header: not an operative.gin written by fourds")
    bindings: dict[str, dict[str, Any]] = {}
    for statement in ConfigParser(text, _Reader()):
        if not isinstance(statement, BindingStatement):
            raise ValueError(f"{path}: {statement} is not a binding")
        name = f"{statement.scope}/{statement.selector}" if statement.scope else statement.selector
        bindings.setdefault(name, {})[statement.arg_name] = statement.value
    return bindings
