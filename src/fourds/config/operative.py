"""Each stage's operative configuration in gin syntax, written beside its outputs.

A stage reads a few sections of params.yaml: its model, its schedule, its readout settings.
`operative_config` binds those sections to gin configurables (the schema's dataclasses,
registered under the `fourds` module, one gin scope per section), rebuilds every section
through gin, checks that what gin built equals what the stage used, and returns gin's operative
config: every value that reached the stage, in a file gin itself parses back
(`load_operative`). fourds.records writes it as `operative.gin` next to `run.yaml`.

    # section pretrain -> scope pretrain (fourds.PretrainConfig)
    pretrain/PretrainConfig.batch_size = 16
    ...
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import gin

from fourds.config import schema

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
CONFIGURABLES = {cls: gin.external_configurable(cls, module="fourds") for cls in SECTION_CLASSES}
SECTION_LINE = re.compile(r"^# section (\S+) -> scope (\S+) \(fourds\.(\w+)\)$")


def scope_of(section: str) -> str:
    """The gin scope of a params section: "readouts.depth" -> "readouts_depth"."""
    return re.sub(r"\W", "_", section)


def _bindings(scope: str, value: Any) -> list[str]:
    """gin bindings that rebuild the dataclass `value` in `scope` (nested ones by reference)."""
    name = f"fourds.{type(value).__name__}"
    lines = []
    for field in dataclasses.fields(value):
        item = getattr(value, field.name)
        if dataclasses.is_dataclass(item):
            lines += _bindings(scope, item)
            item_name = f"fourds.{type(item).__name__}"
            lines.append(f"{scope}/{name}.{field.name} = @{scope}/{item_name}()")
        else:
            lines.append(f"{scope}/{name}.{field.name} = {item!r}")
    return lines


def _build(section_classes: dict[str, type]) -> dict[str, Any]:
    built = {}
    for section, cls in section_classes.items():
        with gin.config_scope(scope_of(section)):
            built[section] = CONFIGURABLES[cls]()
    return built


def operative_config(sections: dict[str, Any]) -> str:
    """The operative gin config of a stage that used `sections` (params key -> dataclass).

    Raises:
        RuntimeError: gin rebuilt a section differently (a value gin cannot represent).
    """
    gin.clear_config()
    try:
        gin.parse_config(
            [line for name, value in sections.items() for line in _bindings(scope_of(name), value)]
        )
        built = _build({section: type(value) for section, value in sections.items()})
        for section, value in sections.items():
            if built[section] != value:
                raise RuntimeError(f"gin rebuilt {section} as {built[section]}, not {value}")
        header = [
            f"# section {section} -> scope {scope_of(section)} (fourds.{type(value).__name__})"
            for section, value in sections.items()
        ]
        return "\n".join(header) + "\n\n" + gin.operative_config_str()
    finally:
        gin.clear_config()


def load_operative(path: str | Path) -> dict[str, Any]:
    """The sections (params key -> dataclass) a stage ran with, from its `operative.gin`."""
    text = Path(path).read_text()
    classes = {
        match[1]: getattr(schema, match[3])
        for line in text.splitlines()
        if (match := SECTION_LINE.match(line))
    }
    if not classes:
        raise ValueError(f"{path}: no '# section' lines: not an operative.gin written by fourds")
    gin.clear_config()
    try:
        gin.parse_config(text)
        return _build(classes)
    finally:
        gin.clear_config()
