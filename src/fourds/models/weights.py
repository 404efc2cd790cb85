"""Single-file weights: what pretraining exports and readouts load.

The file is a `torch.save` of plain tensors and builtin containers only, read back with
`torch.load(weights_only=True)`, so a file crafted to run code is refused, not executed.

Loading memory-maps the file (`mmap=True`) and builds the model on the meta device, then
assigns the mapped tensors as its parameters (`load_state_dict(assign=True)`): no copy of the
weights is made in host memory, and the pages are read when the model is moved or cast (to a
GPU, to bf16). A 22B-parameter model (87 GB in fp32) loads without 87 GB of RAM, let alone the
two copies a plain load-into-a-built-model takes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from fourds.atomic import atomic_path, check_output_file
from fourds.config import MAEConfig, ModelConfig
from fourds.models.mae import MaskedAutoencoder
from fourds.models.vit import VideoViT

FORMAT = "fourds-mae-v1"


class WeightsError(RuntimeError):
    """A weights file that is missing, malformed or unsafe."""


def write_payload(path: str | Path, payload: dict) -> None:
    """`torch.save` a dict of plain tensors and builtin containers, atomically.

    Saved through an open file, not a path: torch names the archive's folder after the path it
    is given, here the temporary one with its process id, and the same weights would then hash
    differently in every run (DVC records the file's md5 in dvc.lock)."""
    with atomic_path(path) as partial, open(partial, "wb") as handle:
        torch.save(payload, handle)


def is_fourds_file(path: str | Path) -> bool:
    """Whether `path` is a file `write_payload` wrote (its "format" field names fourds)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a torch zip file, or not loadable safely: not ours
        return False
    return isinstance(payload, dict) and str(payload.get("format", "")).startswith("fourds-")


def check_weights_output(path: str | Path, inputs: tuple[str | Path, ...]) -> None:
    """Raise OutputError unless `path` may receive a weights file: apart from `inputs`, and
    absent or a fourds file already (fourds.atomic.check_output_file)."""
    check_output_file(path, inputs, is_fourds_file)


def read_payload(path: str | Path, file_format: str, kind: str, when_missing: str) -> dict:
    """Load a file written by `write_payload` and check its "format" field.

    Args:
        file_format: the expected value of payload["format"].
        kind: what the file is, for messages ("fourds weights", "readout").
        when_missing: how to make the file, for the message when it does not exist.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError:
        raise WeightsError(f"{path}: not found; {when_missing}") from None
    except Exception as error:  # torch raises UnpicklingError and others for unsafe or bad files
        raise WeightsError(f"{path}: not a loadable {kind} file ({error})") from None
    if not isinstance(payload, dict) or payload.get("format") != file_format:
        raise WeightsError(f"{path}: not a {file_format} {kind} file")
    return payload


def save_mae(
    path: str | Path,
    state_dict: dict[str, torch.Tensor],
    model_cfg: ModelConfig,
    mae_cfg: MAEConfig | None,
    frames: int,
    size: int,
    **provenance: str,
) -> None:
    """Write a full (unsharded) MAE state dict with the configs that rebuild it, atomically.

    `mae_cfg` is None for encoder-only weights (keys "encoder.*"), e.g. converted checkpoints;
    `provenance` adds string fields such as the source file.
    """
    payload = {
        "format": FORMAT,
        "model": dataclasses.asdict(model_cfg),
        "mae": None if mae_cfg is None else dataclasses.asdict(mae_cfg),
        "frames": frames,
        "size": size,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        **provenance,
    }
    write_payload(path, payload)


def _read(path: str | Path) -> dict:
    return read_payload(path, FORMAT, "fourds weights", "run the pretrain stage first")


def _model_config(payload: dict) -> ModelConfig:
    fields = dict(payload["model"])
    fields["tubelet"] = tuple(fields["tubelet"])
    return ModelConfig(**fields)


def load_encoder(path: str | Path, backend: str = "sdpa") -> VideoViT:
    """Rebuild only the encoder from a weights file, in eval mode with frozen parameters, with
    the numerics the file records ("convention": "official" for converted official weights;
    fourds' own otherwise)."""
    payload = _read(path)
    convention = payload.get("convention", "fourds")
    with torch.device("meta"):
        encoder = VideoViT(
            _model_config(payload), payload["frames"], payload["size"], backend, convention
        )
    prefix = "encoder."
    state = {k[len(prefix) :]: v for k, v in payload["state_dict"].items() if k.startswith(prefix)}
    encoder.load_state_dict(state, assign=True)
    encoder.requires_grad_(False)
    return encoder.eval()


def load_mae(path: str | Path, backend: str = "sdpa") -> MaskedAutoencoder:
    """Rebuild the whole MAE (encoder and decoder, with the MAE config it was trained with)
    from a pretrain stage's weights file, in eval mode with frozen parameters.

    Raises:
        WeightsError: the file is missing or unsafe, or holds an encoder only (no decoder to
            reconstruct pixels with, e.g. `fourds convert` output).
    """
    payload = _read(path)
    if payload["mae"] is None:
        raise WeightsError(
            f"{path}: encoder-only weights (no MAE decoder); reconstructions need a "
            "checkpoint.pt written by the pretrain stage"
        )
    fields = dict(payload["mae"])
    fields["query_stride"] = tuple(fields["query_stride"])
    fields.setdefault("residual_init", "xavier")  # files written before the field existed
    with torch.device("meta"):
        mae = MaskedAutoencoder.build(
            _model_config(payload), MAEConfig(**fields), payload["frames"], payload["size"], backend
        )
    mae.load_state_dict(payload["state_dict"], assign=True)
    mae.requires_grad_(False)
    return mae.eval()
