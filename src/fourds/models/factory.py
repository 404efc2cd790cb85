"""The one place a ladder scale's model is built from params, and saved with them."""

from __future__ import annotations

from pathlib import Path

import torch

from fourds.config import Params
from fourds.models.mae import MaskedAutoencoder
from fourds.models.vit import VideoViT
from fourds.models.weights import save_mae


def build_mae(params: Params, scale: str) -> MaskedAutoencoder:
    """The MAE of one ladder scale, for the clip shape the curate params produce.

    Built on the current default device (the meta device under `torch.device("meta")`) with
    weights drawn from torch's global generator: seed it first for reproducible weights.
    """
    backend = params.runtime.attention
    encoder = VideoViT(
        params.model(scale), params.curate.clip_frames, params.curate.resolution, backend
    )
    return MaskedAutoencoder(encoder, params.mae, backend)


def initial_encoder(params: Params, scale: str) -> VideoViT:
    """The encoder of `scale` exactly as pretraining starts it (pretrain.seed, unsharded): the
    random-init control of the readouts."""
    torch.manual_seed(params.pretrain.seed)
    return build_mae(params, scale).encoder


def save_weights(
    path: str | Path, state_dict: dict[str, torch.Tensor], params: Params, scale: str
) -> None:
    """The single-file weights of one ladder scale (see fourds.models.weights)."""
    save_mae(
        path,
        state_dict,
        params.model(scale),
        params.mae,
        params.curate.clip_frames,
        params.curate.resolution,
    )
