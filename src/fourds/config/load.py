"""Read `params.yaml` and validate it before any stage does work: every loader of params (the
file, a composition) runs the same checks, `checked`'s."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fourds.config.formats import FORMATS, formats_of
from fourds.config.schema import ConfigError, Params, TaskReadoutConfig, parse
from fourds.config.tasks import TASKS


def checked(data: Any) -> Params:
    """The params `data` (params.yaml's mapping) holds, validated: the schema's rules, then the
    task table's (`check_readout_params`).

    Raises:
        ConfigError: the first rule broken, naming its key.
    """
    params = parse(Params, data)
    check_readout_params(params.readouts)
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Load and validate the params file.

    Raises:
        ConfigError: the file is missing, is not YAML, or breaks a rule of the schema.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} not found: run from the repository root or pass --params")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    return checked(data)


def check_readout_params(readouts: Mapping[str, TaskReadoutConfig]) -> None:
    """The task table's rules on params.yaml's `readouts` (the schema checks the rest, and that
    each is a task of the table): a source format that carries each task's ground truth, and a
    converted readout only where one can be loaded.

    Raises:
        ConfigError: naming the key and the rule.
    """
    for task, settings in readouts.items():
        source = settings.source.format  # one of source_formats(): SourceConfig checks it
        if source not in formats_of(task):
            raise ConfigError(
                f"readouts.{task}.source.format={source!r} has no {task} ground truth "
                f"(it serves {list(FORMATS[source].tasks)})"
            )
        if settings.pretrained and not TASKS[task].loads_converted:
            loadable = [name for name, entry in TASKS.items() if entry.loads_converted]
            raise ConfigError(
                f"readouts.{task}.pretrained={settings.pretrained!r}: only the {loadable} "
                "readouts can be loaded from `fourds convert` output"
            )
