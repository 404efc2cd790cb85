import dataclasses
from pathlib import Path

import torch

from fourds.config import load_params
from fourds.models.mae import MaskedAutoencoder
from fourds.models.readout import AttentionReadout
from fourds.models.vit import VideoViT
from fourds.train.optim import adamw, adamw_param_groups
from fourds.train.pretrain import learning_rate, peak_learning_rate, peak_learning_rates
from tests.conftest import tiny_mae_config, tiny_model_config

TINY = tiny_model_config(qk_norm=True)


def grouped_names(model: torch.nn.Module, weight_decay: float = 0.05) -> tuple[set, set]:
    """(names of decayed parameters, names of the others) from adamw_param_groups."""
    decay, no_decay = adamw_param_groups(model, weight_decay)
    assert decay["weight_decay"] == weight_decay and no_decay["weight_decay"] == 0.0
    names = {id(param): name for name, param in model.named_parameters()}
    return {names[id(p)] for p in decay["params"]}, {names[id(p)] for p in no_decay["params"]}


def test_only_layer_weights_are_decayed_in_the_mae():
    model = MaskedAutoencoder(VideoViT(TINY, frames=4, size=16), tiny_mae_config())
    decayed, kept = grouped_names(model)
    assert decayed | kept == {name for name, _ in model.named_parameters()}
    assert not decayed & kept
    assert decayed == {
        name
        for name, param in model.named_parameters()
        if name.endswith(".weight") and param.ndim >= 2
    }
    for name in (
        "encoder.pos_embed",
        "encoder.patch_embed.bias",
        "encoder.blocks.0.norm1.weight",
        "encoder.blocks.0.norm1.bias",
        "encoder.blocks.0.attn.q.bias",
        "encoder.blocks.0.attn.q_norm.weight",  # QK-LayerNorm
        "encoder.blocks.1.mlp.2.bias",
        "decoder.mask_token",
        "decoder.pos_embed",
        "decoder.norm.weight",
        "decoder.head.bias",
    ):
        assert name in kept, name
    for name in (
        "encoder.patch_embed.weight",  # a Conv3d kernel [width, 3, t, p, q]
        "encoder.blocks.0.attn.q.weight",
        "encoder.blocks.0.attn.kv.weight",
        "encoder.blocks.0.attn.proj.weight",
        "encoder.blocks.1.mlp.0.weight",
        "decoder.embed.weight",
        "decoder.head.weight",
    ):
        assert name in decayed, name


def test_learned_queries_are_not_decayed():
    mae = MaskedAutoencoder(VideoViT(TINY, 4, 16), tiny_mae_config(decoder="queries"))
    _, kept = grouped_names(mae)
    assert "decoder.queries" in kept
    readout = AttentionReadout(32, (2, 4, 4), 4, 16, 2, 3, 0, 1)
    decayed, kept = grouped_names(readout)
    assert {"queries", "temporal_embed"} <= kept
    assert "cross_attn.kv.weight" in decayed


def test_hidden_matrices_take_their_own_rate():
    """muP's split: the encoder blocks' linear weights and the decoder's reader of the encoder
    (its input projection, or the queries decoder's pixel head) at hidden_lr, every other
    parameter at lr; weight decay as adamw_param_groups decides."""
    for decoder, reader in (("mae_st", "decoder.embed.weight"), ("queries", "decoder.head.weight")):
        model = MaskedAutoencoder(VideoViT(TINY, 4, 16), tiny_mae_config(decoder=decoder))
        optimizer = adamw(model, 0.05, lr=1e-3, device=torch.device("cpu"), hidden_lr=2e-4)
        names = {id(param): name for name, param in model.named_parameters()}
        rates = {names[id(p)]: g["lr"] for g in optimizer.param_groups for p in g["params"]}
        decays = {
            names[id(p)]: g["weight_decay"] for g in optimizer.param_groups for p in g["params"]
        }
        hidden = {
            f"encoder.blocks.{i}.{layer}.weight"
            for i in range(TINY.depth)
            for layer in ("attn.q", "attn.kv", "attn.proj", "mlp.0", "mlp.2")
        } | {reader}
        assert {name for name, rate in rates.items() if rate == 2e-4} == hidden
        assert set(rates) == {name for name, _ in model.named_parameters()}
        assert all(rates[name] == 1e-3 for name in set(rates) - hidden)
        assert decays == {
            names[id(p)]: g["weight_decay"]
            for g in adamw_param_groups(model, 0.05)
            for p in g["params"]
        }


def test_lr_scaling_hidden_scales_only_the_hidden_rate():
    pinned = load_params(Path(__file__).parents[2] / "params.yaml").pretrain
    cfg = dataclasses.replace(pinned, lr=1e-3, lr_reference_width=32, lr_scaling="hidden")
    assert peak_learning_rates(cfg, 128) == (1e-3, 2.5e-4)
    assert peak_learning_rates(dataclasses.replace(cfg, lr_scaling="all"), 128) == (2.5e-4, None)
    assert peak_learning_rates(cfg, 16) == (1e-3, None)  # no narrower rule: no group of its own
    assert peak_learning_rates(dataclasses.replace(cfg, lr_reference_width=0), 128) == (1e-3, None)


def test_frozen_and_shared_parameters():
    model = MaskedAutoencoder(VideoViT(TINY, 4, 16), tiny_mae_config())
    model.encoder.requires_grad_(False)
    decayed, kept = grouped_names(model)
    assert not any(name.startswith("encoder.") for name in decayed | kept)
    shared = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    shared[1].weight = shared[0].weight
    decay, no_decay = adamw_param_groups(shared, 0.1)
    assert len(decay["params"]) == 1 and len(no_decay["params"]) == 2  # weight once, 2 biases
    torch.optim.AdamW([decay, no_decay], lr=1e-3)  # AdamW accepts the groups as they are


def test_peak_learning_rate_scales_down_with_width_past_the_reference():
    pinned = load_params(Path(__file__).parents[2] / "params.yaml").pretrain
    cfg = dataclasses.replace(pinned, lr=1e-3, lr_reference_width=96, warmup_steps=10, steps=100)
    assert peak_learning_rate(cfg, 64) == 1e-3  # narrower encoders are never scaled up
    assert peak_learning_rate(cfg, 96) == 1e-3
    assert peak_learning_rate(cfg, 192) == 5e-4
    assert peak_learning_rate(dataclasses.replace(cfg, lr_reference_width=0), 192) == 1e-3
    # the schedule warms up to the peak it is given, then decays to zero
    assert learning_rate(9, cfg, 5e-4) == 5e-4
    assert learning_rate(100, cfg, 5e-4) == 0.0
