"""The seeded initialisation: the same weights for every sharding, drawn shard by shard."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Shard, distribute_tensor
from torch.testing._internal.distributed.fake_pg import FakeStore

from fourds.models.init import Init, draw, initialise, parameter_inits
from fourds.models.mae import MaskedAutoencoder
from fourds.models.vit import VideoViT
from tests.models.test_mae import TINY, tiny_mae_config


def tiny_mae() -> MaskedAutoencoder:
    return MaskedAutoencoder(VideoViT(TINY, frames=4, size=16), tiny_mae_config())


@pytest.mark.parametrize("rule", [Init("uniform", 0.3), Init("trunc_normal", 0.02)])
def test_any_slice_of_a_stream_is_the_same_slice_of_the_whole(rule):
    whole = draw(rule, 7, "blocks.0.mlp.0.weight", 0, 1000)
    for start, count in [(0, 1), (1, 5), (3, 13), (4, 100), (517, 483)]:
        part = draw(rule, 7, "blocks.0.mlp.0.weight", start, count)
        assert torch.equal(part, whole[start : start + count])


def test_streams_differ_by_name_and_seed():
    rule = Init("uniform", 1.0)
    first = draw(rule, 0, "a", 0, 64)
    assert not torch.equal(first, draw(rule, 0, "b", 0, 64))
    assert not torch.equal(first, draw(rule, 1, "a", 0, 64))


def test_distributions():
    uniform = draw(Init("uniform", 0.5), 0, "u", 0, 100_000)
    assert uniform.abs().max() <= 0.5
    assert math.sqrt(3) * uniform.std().item() == pytest.approx(0.5, rel=0.02)
    normal = draw(Init("trunc_normal", 0.02), 0, "n", 0, 100_000)
    assert normal.std().item() == pytest.approx(0.02, rel=0.02)
    assert normal.mean().item() == pytest.approx(0.0, abs=1e-3)
    narrow = draw(Init("trunc_normal", 1.0), 0, "t", 0, 100_000)
    assert narrow.abs().max() <= 2.0  # truncated to [-2, 2] as trunc_normal_


def test_every_parameter_has_a_rule_and_the_seed_fixes_the_weights():
    model = tiny_mae()
    names = {name for name, _ in model.named_parameters()}
    assert set(parameter_inits(model)) == names
    again = initialise(tiny_mae(), seed=3).state_dict()
    for name, tensor in initialise(model, seed=3).state_dict().items():
        assert torch.equal(tensor, again[name]), name


def test_depth_scaled_residual_init_scales_only_each_stacks_residual_outputs():
    """GPT-2's rule: attention and MLP outputs at 1/sqrt(2 * depth) of their xavier bound,
    depth counted per stack (encoder 2 blocks, decoder 1), every other rule unchanged."""
    model = tiny_mae()
    plain, scaled = parameter_inits(model, "xavier"), parameter_inits(model, "depth_scaled")
    factors = {name: scaled[name].scale / plain[name].scale for name in plain if plain[name].scale}
    residual = {name: factor for name, factor in factors.items() if factor != 1.0}
    depths = {"encoder": TINY.depth, "decoder": 1}
    assert residual == {
        f"{stack}.blocks.{i}.{output}.weight": pytest.approx(1 / math.sqrt(2 * depth))
        for stack, depth in depths.items()
        for i in range(depth)
        for output in ("attn.proj", "mlp.2")
    }


def test_zero_residual_init_starts_every_block_as_the_identity():
    """mae.residual_init=zero: both residual outputs of every block, encoder and decoder, are
    zero, so the encoder returns its embedded tokens; every other parameter as under xavier."""
    model = tiny_mae()
    plain = copy.deepcopy(initialise(model, seed=0, residual_init="xavier"))
    zero = initialise(model, seed=0, residual_init="zero")
    residual = {
        f"{stack}.blocks.{i}.{output}.weight"
        for stack, depth in {"encoder": TINY.depth, "decoder": 1}.items()
        for i in range(depth)
        for output in ("attn.proj", "mlp.2")
    }
    for name, tensor in zero.state_dict().items():
        if name in residual:
            assert not tensor.any(), name
        else:
            assert torch.equal(tensor, plain.state_dict()[name]), name
    video = torch.rand(2, 4, 16, 16, 3)
    assert torch.equal(zero.encoder(video), zero.encoder.tokens(video))


def test_a_parameter_without_a_rule_is_named():
    model = tiny_mae()
    model.extra = nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match=r"no initialisation rule for \['extra'\]"):
        parameter_inits(model)


class Embedding(nn.Module):
    """One [1, 12, 8] parameter drawn like a positional embedding, plain or sharded."""

    parameter_inits = {"table": Init("trunc_normal", 0.02)}

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = nn.Parameter(table)


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_each_rank_draws_its_shard_of_the_whole_parameter(dim):
    """Sharded over 4 ranks along any dim (rank r of a fake process group, real tensors), every
    rank's local values are its slice of what one process draws."""
    whole = initialise(Embedding(torch.empty(1, 12, 8)), seed=3).table.detach()
    for rank in range(4):
        dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=4)
        try:
            mesh = init_device_mesh("cpu", (4,))
            sharded = distribute_tensor(torch.zeros(1, 12, 8), mesh, [Shard(dim)])
            local = initialise(Embedding(sharded), seed=3).table.to_local()
            assert torch.equal(local, torch.tensor_split(whole, 4, dim)[rank])
        finally:
            dist.destroy_process_group()
