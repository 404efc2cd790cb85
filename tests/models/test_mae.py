import math

import pytest
import torch

from fourds.models.init import initialise
from fourds.models.mae import (
    MaskedAutoencoder,
    patchify,
    random_masking,
    tube_masking,
    unpatchify,
)
from fourds.models.vit import VideoViT, count_parameters
from fourds.train.optim import adamw_param_groups
from tests.conftest import tiny_mae_config, tiny_model_config

TINY = tiny_model_config()
DECODER = tiny_mae_config()


def test_patchify_round_trip_and_token_order():
    video = torch.rand(2, 4, 8, 12, 3)
    patches = patchify(video, (2, 4, 4))
    assert patches.shape == (2, 2 * 2 * 3, 2 * 4 * 4 * 3)
    torch.testing.assert_close(unpatchify(patches, (2, 4, 4), (2, 2, 3)), video)
    # Token 1 is the tubelet at (t=0, h=0, w=1): frames 0-1, rows 0-3, columns 4-7.
    expected = video[0, 0:2, 0:4, 4:8].reshape(-1)
    torch.testing.assert_close(patches[0, 1], expected)


def test_patch_embedding_uses_the_same_token_order_as_patchify():
    encoder = VideoViT(TINY, frames=4, size=8)
    video = torch.rand(1, 4, 8, 8, 3)
    tokens = encoder.tokens(video) - encoder.pos_embed
    weight = encoder.patch_embed.weight.permute(0, 2, 3, 4, 1).reshape(TINY.width, -1)
    manual = patchify(video, TINY.tubelet) @ weight.T + encoder.patch_embed.bias
    torch.testing.assert_close(tokens, manual, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.9, 0.95])
def test_random_masking_keeps_the_right_count(ratio):
    keep, mask = random_masking(3, 40, ratio, torch.Generator().manual_seed(0))
    kept = max(1, round(40 * (1 - ratio)))
    assert keep.shape == (3, kept)
    assert (mask.sum(dim=1) == 40 - kept).all()
    for row in range(3):
        assert not mask[row, keep[row]].any()  # kept tokens are exactly the unmasked ones
        assert len(set(keep[row].tolist())) == kept


def test_masking_differs_between_clips_and_repeats_with_the_seed():
    first, _ = random_masking(4, 100, 0.9, torch.Generator().manual_seed(1))
    again, _ = random_masking(4, 100, 0.9, torch.Generator().manual_seed(1))
    assert torch.equal(first, again)
    assert not torch.equal(first[0], first[1])


def test_encoder_shapes():
    encoder = VideoViT(TINY, frames=4, size=16)
    video = torch.rand(2, 4, 16, 16, 3)
    assert encoder.grid == (2, 4, 4)
    assert encoder(video).shape == (2, 32, 32)
    keep = torch.tensor([[0, 5, 9], [1, 2, 31]])
    assert encoder(video, keep).shape == (2, 3, 32)
    # Tokens are embedded before the gather: keeping all tokens equals no masking.
    torch.testing.assert_close(encoder(video, torch.arange(32).expand(2, 32)), encoder(video))


def test_encoder_has_no_cls_token_and_no_final_norm():
    encoder = VideoViT(TINY, frames=4, size=16)
    names = [name for name, _ in encoder.named_parameters()]
    assert not any("cls" in name for name in names)
    assert not any(name.startswith("norm") for name in names)
    blocks = TINY.depth * (
        4 * TINY.width**2
        + 4 * TINY.width
        + 2 * TINY.width * TINY.mlp_dim
        + TINY.mlp_dim
        + TINY.width
        + 4 * TINY.width
    )
    embed = 3 * 2 * 4 * 4 * TINY.width + TINY.width + 32 * TINY.width
    assert count_parameters(encoder) == blocks + embed


def test_mae_loss_ignores_visible_tubelets():
    torch.manual_seed(0)
    model = MaskedAutoencoder(VideoViT(TINY, frames=4, size=16), DECODER)
    video = torch.rand(2, 4, 16, 16, 3)
    keep, mask = model.sample_masks(2, torch.Generator().manual_seed(3))
    loss, prediction = model(video, keep, mask)
    assert prediction.shape == (2, 32, 96) and mask.shape == (2, 32)
    target = patchify(video, TINY.tubelet)
    expected = ((prediction - target) ** 2).mean(-1)[mask].mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert model.encoder.patch_embed.weight.grad.abs().sum() > 0
    assert model.decoder.mask_token.grad.abs().sum() > 0


def test_norm_pix_loss_scores_against_per_tubelet_normalised_pixels():
    torch.manual_seed(0)
    cfg = tiny_mae_config(norm_pix_loss=True)
    model = MaskedAutoencoder(VideoViT(TINY, frames=4, size=16), cfg)
    video = torch.rand(2, 4, 16, 16, 3)
    keep, mask = model.sample_masks(2, torch.Generator().manual_seed(3))
    loss, prediction = model(video, keep, mask)
    target = patchify(video, TINY.tubelet)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    torch.testing.assert_close(loss, ((prediction - target) ** 2).mean(-1)[mask].mean())


def test_tube_masking_repeats_the_spatial_mask_over_time():
    keep, mask = tube_masking(3, (4, 3, 5), 0.6, torch.Generator().manual_seed(0))
    assert keep.shape == (3, 4 * 6)  # round(15 * 0.4) = 6 visible positions per time step
    grid = mask.reshape(3, 4, 15)
    assert (grid == grid[:, :1]).all()  # the same positions at every time step
    assert not mask.gather(1, keep).any()
    assert (keep.diff(dim=1) > 0).all()  # sorted, as the encoder gathers them


def test_mae_samples_tube_masks_when_asked():
    cfg = tiny_mae_config(mask_ratio=0.5, mask_type="tube")
    model = MaskedAutoencoder(VideoViT(TINY, frames=4, size=16), cfg)
    _, mask = model.sample_masks(2, torch.Generator().manual_seed(0))
    grid = mask.reshape(2, 2, 16)
    assert (grid[:, 0] == grid[:, 1]).all()


def test_query_decoding_predicts_coarse_patches_from_the_last_blocks():
    """4DS scheme: one learned token per coarse (2x8x8) patch, linear decode, loss on all."""
    torch.manual_seed(0)
    cfg = tiny_mae_config(decoder="queries", query_blocks=1, query_stride=(1, 2, 2))
    model = MaskedAutoencoder(VideoViT(TINY, frames=4, size=16), cfg)
    assert model.target_patch == (2, 8, 8)
    assert not any("blocks" in name for name, _ in model.decoder.named_parameters())
    video = torch.rand(2, 4, 16, 16, 3)
    keep, mask = model.sample_masks(2, torch.Generator().manual_seed(3))
    loss, prediction = model(video, keep, mask)
    assert prediction.shape == (2, 2 * 2 * 2, 2 * 8 * 8 * 3)  # 8 coarse patches per clip
    target = patchify(video, (2, 8, 8))
    torch.testing.assert_close(loss, ((prediction - target) ** 2).mean())
    loss.backward()
    # The queries only enter the last block: the first block's weights learn from the visible
    # tokens' path, and the queries themselves get gradients.
    assert model.decoder.queries.grad.abs().sum() > 0
    assert model.encoder.blocks[0].attn.q.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("decoder", ["mae_st", "queries"])
def test_a_bf16_autocast_step_runs_with_either_decoder(decoder):
    """The fp32 mask token meets bf16 projections under autocast (a dtype mismatch once)."""
    model = MaskedAutoencoder(VideoViT(TINY, 4, 16), tiny_mae_config(decoder=decoder))
    keep, mask = random_masking(2, model.encoder.num_tokens, 0.75)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(torch.rand(2, 4, 16, 16, 3), keep, mask)[0]
    loss.float().backward()
    assert torch.isfinite(loss)


def smooth_clips(batch: int, frames: int, size: int, seed: int) -> torch.Tensor:
    """Drifting colour waves [batch, frames, size, size, 3] in [0.1, 0.9]: structure a model
    can learn beyond each clip's mean colour."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(frames).float()[:, None, None, None] / frames
    y = torch.arange(size).float()[None, :, None, None] / size
    x = torch.arange(size).float()[None, None, :, None] / size
    clips = []
    for _ in range(batch):
        frequency = 4 * torch.rand(2, 3, generator=generator)  # per channel, in y and x
        phase, speed = 6.28 * torch.rand(3, generator=generator), torch.rand(3, generator=generator)
        wave = torch.sin(6.28 * (frequency[0] * y + frequency[1] * (x + speed * t)) + phase)
        clips.append(0.5 + 0.4 * wave)
    return torch.stack(clips)


def mean_colour_loss(video: torch.Tensor, mask: torch.Tensor, tubelet) -> torch.Tensor:
    """Masked-tubelet loss of predicting each clip's mean colour (a model that learns nothing)."""
    colour = video.mean(dim=(1, 2, 3), keepdim=True)
    return patchify((video - colour) ** 2, tubelet).mean(dim=-1)[mask].mean()


def test_mae_overfits_one_batch_far_below_the_mean_colour():
    """With the pretrain optimizer (fourds.train.optim groups, AdamW betas 0.9/0.95) one fixed
    batch with fixed masks is learnt: the masked loss falls far below predicting each clip's
    mean colour. A decoder that cannot tell masked positions apart (no positional embedding, a
    broken scatter) stays near the mean colour; a broken gradient path stays above it."""
    torch.manual_seed(0)
    cfg = tiny_mae_config(decoder_width=32, decoder_heads=4)
    model = MaskedAutoencoder(VideoViT(TINY, frames=4, size=16), cfg)
    video = smooth_clips(4, 4, 16, seed=0)
    keep, mask = model.sample_masks(4, torch.Generator().manual_seed(0))
    baseline = mean_colour_loss(video, mask, TINY.tubelet).item()
    optimizer = torch.optim.AdamW(adamw_param_groups(model, 0.05), lr=3e-3, betas=(0.9, 0.95))
    for _ in range(300):
        loss, _ = model(video, keep, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.2 * baseline, (loss.item(), baseline)


def test_initialisation_follows_the_mae_st_recipe():
    """Tubelet embedding initialised like the equivalent Linear [width, 3*t*p*q] with zero bias;
    self-attention's k and v like separate [dim, dim] layers; positional embeddings and the
    mask token std 0.02."""
    model = MaskedAutoencoder(VideoViT(TINY, frames=4, size=16), tiny_mae_config())
    initialise(model, seed=0)
    encoder = model.encoder
    fan_in = 3 * 2 * 4 * 4

    def uniform_bound(weight: torch.Tensor) -> float:
        return math.sqrt(3) * weight.std().item()  # a uniform(-a, a) has std a / sqrt(3)

    patch = encoder.patch_embed
    assert uniform_bound(patch.weight) == pytest.approx(math.sqrt(6 / (fan_in + 32)), rel=0.05)
    assert patch.weight.abs().max() <= math.sqrt(6 / (fan_in + 32))
    assert (patch.bias == 0).all()
    attn = encoder.blocks[0].attn
    for weight in (attn.q.weight, attn.kv.weight[:32], attn.kv.weight[32:]):
        assert uniform_bound(weight) == pytest.approx(math.sqrt(6 / 64), rel=0.1)
    assert (attn.kv.bias == 0).all() and (encoder.blocks[0].norm1.weight == 1).all()
    for embedding in (encoder.pos_embed, model.decoder.pos_embed):
        assert embedding.std().item() == pytest.approx(0.02, rel=0.1)
    assert 0.005 < model.decoder.mask_token.std().item() < 0.05  # 16 numbers drawn, std 0.02
