"""The one way fourds builds an encoder and an MAE: `build_encoder` from an encoder config and
the clip it reads, `build_mae` from that and an MAE config; `scale_mae` for a ladder scale's
pretraining spec; the scale's initial weights (`initial_mae`) and the two controls' encoders
(`initial_encoder`, `random_encoder`)."""

from __future__ import annotations

import dataclasses

import torch

from fourds.config import MAEConfig, ModelConfig, PretrainSpec
from fourds.config.operative import configured
from fourds.models.init import initialise
from fourds.models.mae import MaskedAutoencoder
from fourds.models.vit import VideoViT


def build_encoder(
    model: ModelConfig, frames: int, size: int, backend: str = "sdpa", convention: str = "fourds"
) -> VideoViT:
    """The video ViT of `model` for clips [frames, size, size, 3] with `convention`'s numerics
    (fourds.models.conventions), placeholder weights on the current default device (nothing is
    allocated under `torch.device("meta")`): a weights file's encoder, the planner's and the
    FLOP counter's. What it builds is described by its weights file or its caller, not by the
    stage's params, so it is not recorded in operative.gin; an MAE's encoder is (`build_mae`)."""
    return VideoViT(model, frames, size, backend, convention)


def build_mae(
    model: ModelConfig, mae: MAEConfig, frames: int, size: int, backend: str = "sdpa"
) -> MaskedAutoencoder:
    """The MAE of encoder `model` for clips [frames, size, size, 3], with placeholder weights on
    the current default device (nothing is allocated under `torch.device("meta")`):
    `fourds.models.init.initialise` draws initial weights, or load trained ones. Inside a stage
    run its values go through gin (fourds.config.operative), so operative.gin records them."""
    values = {"cfg": model, "frames": frames, "size": size, "backend": backend}
    encoder = configured(VideoViT, values)
    return configured(MaskedAutoencoder, {"cfg": mae, "backend": backend}, encoder)


def scale_mae(spec: PretrainSpec) -> MaskedAutoencoder:
    """`build_mae` for one ladder scale, at the clip shape its curate params produce."""
    return build_mae(
        spec.model, spec.mae, spec.curate.clip_frames, spec.curate.resolution, spec.attention
    )


def initial_mae(spec: PretrainSpec, device: str | torch.device = "cpu") -> MaskedAutoencoder:
    """The MAE of `spec`'s scale with the initial weights of pretraining (drawn from
    pretrain.seed by fourds.models.init, the weights every launch of the pretrain stage starts
    from)."""
    with torch.device("meta"):
        model = scale_mae(spec)
    return initialise(model.to_empty(device=device), spec.pretrain.seed, spec.mae.residual_init)


def initial_encoder(spec: PretrainSpec) -> VideoViT:
    """The control at pretraining's start (regime "initial"): the encoder of `spec`'s scale
    exactly as pretraining starts it (step 0, drawn from pretrain.seed)."""
    return initial_mae(spec).encoder


def random_encoder(spec: PretrainSpec) -> VideoViT:
    """The random-network control (regime "random_init"): the encoder of `spec`'s scale as
    pretraining starts it, except that residual outputs pretraining starts at zero
    (mae.residual_init=zero) are drawn at their xavier bound: a zero-initialised block is the
    identity, and this control is a random network, the same one as under xavier."""
    if spec.mae.residual_init == "zero":
        spec = dataclasses.replace(spec, mae=dataclasses.replace(spec.mae, residual_init="xavier"))
    return initial_mae(spec).encoder
