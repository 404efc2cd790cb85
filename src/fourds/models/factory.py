"""The one place a ladder scale's model is built from params, and saved with them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from fourds.config import Params
from fourds.config.operative import configured
from fourds.models.init import initialise
from fourds.models.mae import MaskedAutoencoder
from fourds.models.vit import VideoViT
from fourds.models.weights import save_mae


def build_mae(params: Params, scale: str) -> MaskedAutoencoder:
    """The MAE of one ladder scale, for the clip shape the curate params produce, with
    placeholder weights on the current default device (nothing is allocated under
    `torch.device("meta")`): `initial_mae` draws the initial weights, or load trained ones.
    Built as `MaskedAutoencoder.build` builds it, its params values given through gin in a
    stage run (fourds.config.operative)."""
    attention = params.runtime.attention
    encoder = configured(
        VideoViT,
        {
            "cfg": params.model(scale),
            "frames": params.curate.clip_frames,
            "size": params.curate.resolution,
            "backend": attention,
        },
    )
    return configured(MaskedAutoencoder, {"cfg": params.mae, "backend": attention}, encoder)


def initial_mae(
    params: Params, scale: str, device: str | torch.device = "cpu"
) -> MaskedAutoencoder:
    """The MAE of `scale` with the initial weights of pretraining (drawn from pretrain.seed by
    fourds.models.init, the weights every launch of the pretrain stage starts from)."""
    with torch.device("meta"):
        model = build_mae(params, scale)
    return initialise(model.to_empty(device=device), params.pretrain.seed, params.mae.residual_init)


def initial_encoder(params: Params, scale: str) -> VideoViT:
    """The random-init control of the readouts: the encoder of `scale` as pretraining starts
    it, drawn from pretrain.seed, except that residual outputs pretraining starts at zero
    (mae.residual_init=zero) are drawn at their xavier bound: a zero-initialised block is the
    identity, and the control is a random network, the same one as under xavier."""
    if params.mae.residual_init == "zero":
        mae = dataclasses.replace(params.mae, residual_init="xavier")
        params = dataclasses.replace(params, mae=mae)
    return initial_mae(params, scale).encoder


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
