"""The one way to build an encoder and an MAE, and the controls: the encoder exactly as
pretraining starts it, and a random network under every pretraining initialisation."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import torch

from fourds.config import load_params
from fourds.models.factory import initial_encoder, initial_mae, random_encoder

SOURCE = Path(__file__).parents[2] / "src/fourds"
PARAMS = load_params(SOURCE.parents[1] / "params.yaml")


def test_no_module_but_the_factory_builds_an_encoder_or_an_mae():
    """fourds.models.factory.build_encoder and build_mae are the only places a VideoViT or a
    MaskedAutoencoder is made (by a call, or by name through gin's `configured`)."""
    built = ("VideoViT", "MaskedAutoencoder")
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                names = [node.func, *node.args[:1]]  # VideoViT(...), configured(VideoViT, ...)
                if any(isinstance(name, ast.Name) and name.id in built for name in names):
                    found.append(f"{path.relative_to(SOURCE)}:{node.lineno}")
    assert found and all(place.startswith("models/factory.py:") for place in found), found


def with_residual_init(rule: str):
    return dataclasses.replace(PARAMS, mae=dataclasses.replace(PARAMS.mae, residual_init=rule))


def test_the_initial_control_is_the_encoder_pretraining_starts_from():
    zero = with_residual_init("zero")
    pretraining_starts = initial_mae(zero.pretraining("cpu_s")).encoder.state_dict()
    control = initial_encoder(zero.pretraining("cpu_s"))
    assert not control.blocks[0].mlp[2].weight.any()  # pretraining's start: identity blocks
    for name, tensor in control.state_dict().items():
        assert torch.equal(tensor, pretraining_starts[name]), name


def test_the_random_control_of_a_zero_initialised_encoder_is_the_xavier_one():
    zero, xavier = with_residual_init("zero"), with_residual_init("xavier")
    pretraining_starts = initial_mae(zero.pretraining("cpu_s")).encoder
    assert not pretraining_starts.blocks[0].mlp[2].weight.any()  # pretraining: the identity
    control = random_encoder(zero.pretraining("cpu_s"))
    expected = random_encoder(xavier.pretraining("cpu_s")).state_dict()
    for name, tensor in control.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_under_other_initialisations_the_random_control_is_the_encoder_as_pretraining_starts_it():
    scaled = with_residual_init("depth_scaled")
    control = random_encoder(scaled.pretraining("cpu_s")).state_dict()
    for name, tensor in initial_mae(scaled.pretraining("cpu_s")).encoder.state_dict().items():
        assert torch.equal(tensor, control[name]), name


def test_the_initial_control_holds_the_weights_the_pretrain_stage_starts_from():
    from fourds.models.factory import scale_mae
    from fourds.train.parallelize import ParallelPlan, parallelize

    spec = PARAMS.pretraining("cpu_s")
    started = parallelize(lambda: scale_mae(spec), ParallelPlan.from_spec(spec, False), "cpu", 0)
    control = initial_encoder(spec).state_dict()
    for name, tensor in started.encoder.state_dict().items():
        assert torch.equal(tensor, control[name]), name
