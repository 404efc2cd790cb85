"""Read `params.yaml` and validate it before any stage does work."""

from __future__ import annotations

from pathlib import Path

import yaml

from fourds.config.schema import ConfigError, Params, parse


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
    return parse(Params, data)
