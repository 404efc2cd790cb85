"""The random-init control is a random network under every pretraining initialisation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from fourds.config import load_params
from fourds.models.factory import initial_encoder, initial_mae

PARAMS = load_params(Path(__file__).parents[2] / "params.yaml")


def with_residual_init(rule: str):
    return dataclasses.replace(PARAMS, mae=dataclasses.replace(PARAMS.mae, residual_init=rule))


def test_the_control_of_a_zero_initialised_encoder_is_the_xavier_one():
    zero, xavier = with_residual_init("zero"), with_residual_init("xavier")
    pretraining_starts = initial_mae(zero.pretraining("cpu_s")).encoder
    assert not pretraining_starts.blocks[0].mlp[2].weight.any()  # pretraining: the identity
    control = initial_encoder(zero.pretraining("cpu_s"))
    expected = initial_encoder(xavier.pretraining("cpu_s")).state_dict()
    for name, tensor in control.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_other_controls_are_the_encoder_as_pretraining_starts_it():
    scaled = with_residual_init("depth_scaled")
    control = initial_encoder(scaled.pretraining("cpu_s")).state_dict()
    for name, tensor in initial_mae(scaled.pretraining("cpu_s")).encoder.state_dict().items():
        assert torch.equal(tensor, control[name]), name
