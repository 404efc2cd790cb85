"""Read `params.yaml` and validate it before any stage does work: every loader of params (the
file, a composition) runs the same checks, `checked`'s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fourds.config.schema import ConfigError, Params, parse
from fourds.config.tasks import check_readout_params


def checked(data: Any) -> Params:
    """The params `data` (params.yaml's mapping) holds, validated: the schema's rules, then the
    task table's (fourds.config.tasks.check_readout_params).

    Raises:
        ConfigError: the first rule broken, naming its key.
    """
    params = parse(Params, data)
    check_readout_params(params.readout, params.readouts)
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
