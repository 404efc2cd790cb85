"""The one place a ladder scale's model is built from its pretraining spec, and saved with it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from fourds.config import PretrainSpec
from fourds.config.operative import configured
from fourds.models.init import initialise
from fourds.models.mae import MaskedAutoencoder
from fourds.models.vit import VideoViT
from fourds.models.weights import save_mae


def build_mae(spec: PretrainSpec) -> MaskedAutoencoder:
    """The MAE of one ladder scale, for the clip shape its curate params produce, with
    placeholder weights on the current default device (nothing is allocated under
    `torch.device("meta")`): `initial_mae` draws the initial weights, or load trained ones.
    Built as `MaskedAutoencoder.build` builds it, its params values given through gin in a
    stage run (fourds.config.operative)."""
    encoder = configured(
        VideoViT,
        {
            "cfg": spec.model,
            "frames": spec.curate.clip_frames,
            "size": spec.curate.resolution,
            "backend": spec.attention,
        },
    )
    return configured(MaskedAutoencoder, {"cfg": spec.mae, "backend": spec.attention}, encoder)


def initial_mae(spec: PretrainSpec, device: str | torch.device = "cpu") -> MaskedAutoencoder:
    """The MAE of `spec`'s scale with the initial weights of pretraining (drawn from
    pretrain.seed by fourds.models.init, the weights every launch of the pretrain stage starts
    from)."""
    with torch.device("meta"):
        model = build_mae(spec)
    return initialise(model.to_empty(device=device), spec.pretrain.seed, spec.mae.residual_init)


def initial_encoder(spec: PretrainSpec) -> VideoViT:
    """The random-init control of the readouts: the encoder of `spec`'s scale as pretraining
    starts it, drawn from pretrain.seed, except that residual outputs pretraining starts at zero
    (mae.residual_init=zero) are drawn at their xavier bound: a zero-initialised block is the
    identity, and the control is a random network, the same one as under xavier."""
    if spec.mae.residual_init == "zero":
        spec = dataclasses.replace(spec, mae=dataclasses.replace(spec.mae, residual_init="xavier"))
    return initial_mae(spec).encoder


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor], spec: PretrainSpec) -> None:
    """The single-file weights of one ladder scale (see fourds.models.weights)."""
    save_mae(
        path, state_dict, spec.model, spec.mae, spec.curate.clip_frames, spec.curate.resolution
    )
