"""The ViT-22B block options: QK-LayerNorm, parallel attention + MLP, bias-free projections."""

import copy

import torch

from fourds.models.vit import Block
from fourds.train.parallelize import apply_activation_checkpointing


def test_parallel_block_adds_both_branches_of_one_norm():
    torch.manual_seed(0)
    block = Block(16, 2, 32, parallel=True)
    x = torch.rand(2, 5, 16)
    y = block.norm1(x)
    torch.testing.assert_close(block(x), x + block.attn(y) + block.mlp(y))
    assert isinstance(block.norm2, torch.nn.Identity)


def test_sequential_block_feeds_attention_output_to_the_mlp():
    torch.manual_seed(0)
    block = Block(16, 2, 32)
    x = torch.rand(2, 5, 16)
    h = x + block.attn(block.norm1(x))
    torch.testing.assert_close(block(x), h + block.mlp(block.norm2(h)))


def test_qk_norm_normalises_each_head():
    plain, normed = Block(16, 2, 32), Block(16, 2, 32, qk_norm=True)
    extra = sum(p.numel() for p in normed.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == 2 * 2 * 8  # weight and bias of a LayerNorm over head_dim 8, for q and for k
    assert isinstance(normed.attn.q_norm, torch.nn.LayerNorm)


def test_bias_free_projections():
    block = Block(16, 2, 32, bias=False)
    linears = [m for m in block.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 5 and all(m.bias is None for m in linears)


def test_activation_checkpointing_gives_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    block = Block(16, 2, 32)
    x = torch.rand(2, 5, 16, requires_grad=True)
    block(x).square().sum().backward()
    expected = [x.grad.clone()] + [p.grad.clone() for p in block.parameters()]
    block.zero_grad()
    x.grad = None
    apply_activation_checkpointing(block)
    block(x).square().sum().backward()
    got = [x.grad] + [p.grad for p in block.parameters()]
    for a, b in zip(expected, got, strict=True):
        torch.testing.assert_close(a, b)
    assert copy.deepcopy(block).forward.__self__ is not block  # a copy checkpoints itself
