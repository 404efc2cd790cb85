"""Single-file weights: what pretraining exports and readouts load.

The file is a `torch.save` of plain tensors and builtin containers only, read back with
`torch.load(weights_only=True)`, so a file crafted to run code is refused, not executed.

Loading memory-maps the file (`mmap=True`) and builds the model on the meta device, then
assigns the mapped tensors as its parameters (`load_state_dict(assign=True)`): no copy of the
weights is made in host memory, and the pages are read when the model is moved or cast (to a
GPU, to bf16). A 22B-parameter model (87 GB in fp32) loads without 87 GB of RAM, let alone the
two copies a plain load-into-a-built-model takes.

Every file fourds writes records the sha256 of its content (`content_digest`: every field and
every tensor's bytes) under "digest", and every read checks it: a file damaged on disk or in a
copy is refused, not used. A file without one (written elsewhere, or by fourds before files
recorded it) loads as before and is unverified (`is_verified`), which run records say.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import torch

from fourds.atomic import atomic_path, check_output_file
from fourds.config import MAEConfig, ModelConfig, PretrainSpec
from fourds.errors import WeightsError
from fourds.models.factory import build_encoder, build_mae
from fourds.models.mae import MaskedAutoencoder
from fourds.models.vit import VideoViT

FORMAT = "fourds-mae-v1"
# Where encoder weights come from, for the error a missing weights file raises.
WHERE_WEIGHTS = (
    "make them with the pretrain stage (`dvc repro pretrain@<scale>`), fetch the shipped "
    "reference study's (`dvc pull reports/reference/checkpoints.dvc`, then "
    "reports/reference/checkpoints/<scale>.pt), or convert an official 4DS release "
    "(docs/official-checkpoints.md)"
)


def content_digest(value: Any) -> str:
    """sha256 of a payload's content, hex: its fields in key order, each tensor by dtype, shape
    and bytes (read in place from a memory-mapped file)."""
    digest = hashlib.sha256()

    def feed(item: Any) -> None:
        if isinstance(item, torch.Tensor):
            flat = item.detach().cpu().contiguous().reshape(-1)
            digest.update(f"tensor {flat.dtype} {tuple(item.shape)}\n".encode())
            digest.update(flat.view(torch.uint8).numpy())
        elif isinstance(item, dict):
            digest.update(f"dict {len(item)}\n".encode())
            for key, field in sorted(item.items(), key=lambda pair: repr(pair[0])):
                digest.update(f"{key!r}\n".encode())
                feed(field)
        elif isinstance(item, list | tuple):
            digest.update(f"{type(item).__name__} {len(item)}\n".encode())
            for element in item:
                feed(element)
        else:
            digest.update(f"{type(item).__name__} {item!r}\n".encode())

    feed(value)
    return digest.hexdigest()


def write_payload(path: str | Path, payload: dict, what: str = "weights") -> None:
    """`torch.save` a dict of plain tensors and builtin containers with its `content_digest`
    under "digest", atomically (`what` names it if the disk fills).

    Saved through an open file, not a path: torch names the archive's folder after the path it
    is given, here the temporary one with its process id, and the same weights would then hash
    differently in every run (DVC records the file's md5 in dvc.lock)."""
    payload = {**payload, "digest": content_digest(payload)}
    with atomic_path(path, what) as partial, open(partial, "wb") as handle:
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
    """Load a file written by `write_payload`, check its "format" field and, where it records
    one, its content digest (see the module docstring).

    Args:
        file_format: the expected value of payload["format"].
        kind: what the file is, for messages ("fourds weights", "readout").
        when_missing: how to make the file, for the message when it does not exist.

    Raises:
        WeightsError: the file is missing, unsafe, of another format, or damaged.
    """
    restore = f"restore it (`dvc checkout {path}`) or make it again: {when_missing}"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError:
        raise WeightsError(f"{path}: not found; {when_missing}") from None
    except Exception as error:  # torch raises UnpicklingError and others for unsafe or bad files
        raise WeightsError(
            f"{path}: not a loadable {kind} file ({first_line(error)}); if fourds wrote it, it is "
            f"damaged: {restore}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != file_format:
        raise WeightsError(f"{path}: not a {file_format} {kind} file")
    recorded = payload.get("digest")
    if recorded is not None:
        content = {key: value for key, value in payload.items() if key != "digest"}
        if content_digest(content) != recorded:
            raise WeightsError(
                f"{path}: damaged (its content does not match the digest it was written with); "
                f"{restore}"
            )
    return payload


def first_line(error: Exception) -> str:
    """The first line of an error's message (torch's archive errors run over several)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def is_verified(path: str | Path) -> bool:
    """Whether the weights file at `path` records its content digest, which reading it checks
    (False for a file written elsewhere: loaded as it is, unverified)."""
    payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return isinstance(payload, dict) and "digest" in payload


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


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor], spec: PretrainSpec) -> None:
    """The single-file weights of one ladder scale (`save_mae` with its spec's configs)."""
    save_mae(
        path, state_dict, spec.model, spec.mae, spec.curate.clip_frames, spec.curate.resolution
    )


def _read(path: str | Path) -> dict:
    return read_payload(path, FORMAT, "fourds weights", WHERE_WEIGHTS)


def verify_weights(path: str | Path) -> None:
    """Raise WeightsError unless `path` is a fourds weights file whose content is as written
    (its digest, where it records one)."""
    _read(path)


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
        encoder = build_encoder(
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
        mae = build_mae(
            _model_config(payload), MAEConfig(**fields), payload["frames"], payload["size"], backend
        )
    mae.load_state_dict(payload["state_dict"], assign=True)
    mae.requires_grad_(False)
    return mae.eval()
