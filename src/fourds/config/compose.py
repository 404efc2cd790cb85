"""Compose the Hydra tree in experiments/ into params.yaml, as DVC does on `dvc exp run -S`."""

from __future__ import annotations

from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fourds.atomic import atomic_path
from fourds.config.schema import Params, parse


def compose_params(overrides: list[str], config_dir: str | Path = "experiments") -> dict:
    """The plain mapping that `config.yaml` plus `overrides` (e.g. "ladder=4ds") composes to."""
    with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base=None):
        config = compose(config_name="config", overrides=overrides)
    return OmegaConf.to_container(config, resolve=True)


def write_params(
    path: str | Path, overrides: list[str], config_dir: str | Path = "experiments"
) -> Params:
    """Compose, validate, and write params.yaml atomically; returns the validated params."""
    data = compose_params(overrides, config_dir)
    params = parse(Params, data)
    with atomic_path(path) as partial:
        partial.write_text(yaml.safe_dump(data, sort_keys=False))
    return params
