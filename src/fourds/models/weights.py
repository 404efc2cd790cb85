"""Single-file weights: what pretraining exports and readouts load.

The file is a `torch.save` of plain tensors and builtin containers only, read back with
`torch.load(weights_only=True)`, so a file crafted to run code is refused, not executed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from fourds.config import MAEConfig, ModelConfig
from fourds.models.vit import VideoViT
from fourds.records import atomic_path

FORMAT = "fourds-mae-v1"


class WeightsError(RuntimeError):
    """A weights file that is missing, malformed or unsafe."""


def save_mae(
    path: str | Path,
    state_dict: dict[str, torch.Tensor],
    model_cfg: ModelConfig,
    mae_cfg: MAEConfig,
    frames: int,
    size: int,
) -> None:
    """Write a full (unsharded) MAE state dict with the configs that rebuild it, atomically."""
    payload = {
        "format": FORMAT,
        "model": dataclasses.asdict(model_cfg),
        "mae": dataclasses.asdict(mae_cfg),
        "frames": frames,
        "size": size,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
    }
    with atomic_path(path) as partial:
        torch.save(payload, partial)


def _read(path: str | Path) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"{path}: not found; run the pretrain stage first") from None
    except Exception as error:  # torch raises UnpicklingError and others for unsafe or bad files
        raise WeightsError(f"{path}: not a loadable fourds weights file ({error})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a {FORMAT} weights file")
    return payload


def _model_config(payload: dict) -> ModelConfig:
    fields = dict(payload["model"])
    fields["tubelet"] = tuple(fields["tubelet"])
    return ModelConfig(**fields)


def load_encoder(path: str | Path, backend: str = "sdpa") -> VideoViT:
    """Rebuild only the encoder from a weights file, in eval mode with frozen parameters."""
    payload = _read(path)
    encoder = VideoViT(_model_config(payload), payload["frames"], payload["size"], backend)
    prefix = "encoder."
    state = {k[len(prefix) :]: v for k, v in payload["state_dict"].items() if k.startswith(prefix)}
    encoder.load_state_dict(state)
    encoder.requires_grad_(False)
    return encoder.eval()
