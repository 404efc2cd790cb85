"""Compose the Hydra tree in experiments/ into params.yaml, as DVC does on `dvc exp run -S`."""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf

from fourds.atomic import atomic_path
from fourds.config.load import checked
from fourds.config.schema import ConfigError, Params


def compose_params(overrides: list[str], config_dir: str | Path = "experiments") -> dict:
    """The plain mapping that `config.yaml` plus `overrides` (e.g. "ladder=4ds") composes to.

    Raises:
        ConfigError: an override Hydra cannot apply (an unknown key or group, bad syntax),
            with Hydra's own one-line reason.
    """
    with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base=None):
        try:
            config = compose(config_name="config", overrides=overrides)
        except HydraException as error:
            reason = _unknown_key(overrides, config_dir) or " ".join(str(error).split())
            raise ConfigError(f"cannot compose {' '.join(overrides)}: {reason}") from None
    return OmegaConf.to_container(config, resolve=True)


def _unknown_key(overrides: list[str], config_dir: str | Path) -> str | None:
    """For the first override whose key is neither a param of the default composition nor a
    config group: that it is no param, and the nearest that are (None when every key is known).
    Hydra's own hint for it (append with `+`) would add a param no stage reads."""
    groups = [override for override in overrides if "." not in override.partition("=")[0]]
    try:  # the params of the groups chosen (a ladder's own models), else the default's
        base = compose(config_name="config", overrides=groups)
    except HydraException:
        base = compose(config_name="config")
    known = set(_dotted_keys(OmegaConf.to_container(base)))
    known |= {path.name for path in Path(config_dir).iterdir() if path.is_dir()}
    for override in overrides:
        key = override.partition("=")[0].lstrip("+~").partition("@")[0]
        if key not in known:
            nearest = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
            hint = f"; the nearest: {', '.join(nearest)}" if nearest else ""
            return f"{key} is no param (params.yaml lists them){hint}"
    return None


def _dotted_keys(tree: dict, prefix: str = "") -> list[str]:
    """Every key of a nested mapping as a dotted path, the inner nodes' included."""
    keys = []
    for name, value in tree.items():
        keys.append(f"{prefix}{name}")
        if isinstance(value, dict):
            keys.extend(_dotted_keys(value, f"{prefix}{name}."))
    return keys


def write_params(
    path: str | Path,
    overrides: list[str],
    config_dir: str | Path = "experiments",
    replace: bool = True,
) -> Params:
    """Compose, validate (fourds.config.load.checked), and write params.yaml atomically; returns
    the validated params. With `replace` false an existing file that holds other params is left
    as it is (a ConfigError says how to write it), so that a composition never silently takes
    the place of the pinned params.yaml; one that already holds this composition is not
    rewritten."""
    data = compose_params(overrides, config_dir)
    params = checked(data)
    text = yaml.safe_dump(data, sort_keys=False)
    path = Path(path)
    if not replace and path.is_file():
        if path.read_text() == text:
            return params
        raise ConfigError(
            f"{path} holds other params than this composition (the pinned params DVC runs, or "
            f"an earlier composition), so it is left as it is: write another file with "
            f"--out <file>, or replace it with --out {path} (`git checkout {path}` restores "
            f"the pin)"
        )
    with atomic_path(path) as partial:
        partial.write_text(text)
    return params


def ladder_params(config_dir: str | Path = "experiments") -> list[Params]:
    """The params of every ladder of the tree (`ladder=<name>` for each experiments/ladder/*.yaml),
    validated."""
    ladders = sorted(path.stem for path in (Path(config_dir) / "ladder").glob("*.yaml"))
    return [checked(compose_params([f"ladder={name}"], config_dir)) for name in ladders]
