"""The encoder a readout reads, as its regime (fourds.config.regimes) says: a control's (as
pretraining starts it, or a random network) or loaded from a pretraining checkpoint checked to
be the scale's; fine-tuned in fp32, else frozen in readout.precision."""

from __future__ import annotations

from pathlib import Path

import torch

from fourds.config import ConfigError, ModelConfig, ReadoutSpec
from fourds.config.operative import configured
from fourds.config.regimes import REGIMES
from fourds.evaluate.precision import frozen
from fourds.models.factory import initial_encoder, random_encoder
from fourds.models.vit import VideoViT
from fourds.models.weights import load_encoder

ARCHITECTURE = ("width", "depth", "heads", "mlp_dim", "tubelet")  # what shapes the weights
CONTROL_ENCODERS = {"initial": initial_encoder, "random": random_encoder}  # by RegimeEntry.weights


def check_encoder_scale(
    loaded: ModelConfig, expected: ModelConfig, checkpoint: Path, scale: str
) -> None:
    """The encoder read from `checkpoint` has the architecture params give scale `scale`.

    Raises:
        ConfigError: it has another (a checkpoint of another scale or ladder).
    """

    def shape(cfg: ModelConfig) -> str:
        return ", ".join(f"{name} {getattr(cfg, name)}" for name in ARCHITECTURE)

    if shape(loaded) != shape(expected):
        raise ConfigError(
            f"{checkpoint} holds an encoder of {shape(loaded)}; scale {scale!r} in the params "
            f"is {shape(expected)}: pass the checkpoint of {scale} (runs/pretrain/{scale}) or "
            "the scale the checkpoint was trained as"
        )


def regime_encoder(spec: ReadoutSpec, checkpoint: Path, device: torch.device) -> VideoViT:
    """The encoder of the readout `spec`'s scale as its regime reads it: a control's
    (`CONTROL_ENCODERS`) or loaded from `checkpoint` (checked to be the scale's); fp32 and
    trainable to be fine-tuned, else frozen in readout.precision."""
    entry = REGIMES[spec.regime]
    if not entry.pretrained:
        encoder = CONTROL_ENCODERS[entry.weights](spec.pretraining)
    else:
        encoder = load_encoder(checkpoint, spec.attention)
        check_encoder_scale(encoder.cfg, spec.pretraining.model, checkpoint, spec.scale)
    if entry.trains_encoder:  # fp32, whatever readout.precision says
        return encoder.to(device).requires_grad_(True).train()
    # one GPU holds it unsharded (bf16: 4DS-j in about 41 GiB; `fourds plan` checks)
    return configured(frozen, {"precision": spec.shared.precision}, encoder, device=device)
