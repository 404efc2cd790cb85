"""Masked auto-encoding of video: MAE-ST decoding and the 4DS decoding scheme.

Random spacetime (or tube) masking by sorting noise; the encoder sees only the visible tokens.
Two ways to predict the pixels (`mae.decoder`):

- `mae_st`: a light transformer decoder gets the encoded visible tokens scattered back into a
  full grid of learned mask tokens, adds its own positional embedding and predicts the pixels of
  every tubelet; the loss is the mean squared error on the masked tubelets.
- `queries` (4DS): no decoder blocks. Learned tokens, one per coarse patch (query_stride x
  tubelet), are appended to the visible tokens before the last `query_blocks` encoder blocks,
  which process both sets; a linear layer decodes each learned token into its coarse patch of
  pixels. The loss is the mean squared error over every coarse patch, since a coarse patch
  mixes visible and masked tubelets and the learned tokens see pixels only through attention.
"""

from __future__ import annotations

import math

import gin
import torch
from torch import nn

from fourds.config import MAEConfig
from fourds.models.init import Init
from fourds.models.vit import Block, VideoViT, as_pixels, patchify


def unpatchify(
    patches: torch.Tensor, tubelet: tuple[int, int, int], grid: tuple[int, int, int]
) -> torch.Tensor:
    """Inverse of `patchify`: [B, N, t*p*q*C] -> [B, T, H, W, C]."""
    batch = patches.shape[0]
    t, p, q = tubelet
    gt, gh, gw = grid
    x = patches.reshape(batch, gt, gh, gw, t, p, q, -1)  # [B, T', h, w, t, p, q, C]
    x = x.permute(0, 1, 4, 2, 5, 3, 6, 7)  # [B, T', t, h, p, w, q, C]
    return x.reshape(batch, gt * t, gh * p, gw * q, -1)


def random_masking(
    batch: int, num_tokens: int, mask_ratio: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose a uniformly random visible subset of tokens per clip, on the host (the masks of
    a batch are drawn there from a CPU `generator` and moved with the batch).

    Returns:
        keep_index: [B, n_keep] int64, sorted token indices that stay visible.
        mask: [B, N] bool, True where the token is masked (to be reconstructed).
    """
    num_keep = max(1, round(num_tokens * (1.0 - mask_ratio)))
    noise = torch.rand(batch, num_tokens, generator=generator, device="cpu")
    keep_index = noise.argsort(dim=1)[:, :num_keep].sort(dim=1).values
    mask = torch.ones(batch, num_tokens, dtype=torch.bool, device="cpu")
    mask.scatter_(1, keep_index, False)
    return keep_index, mask


def tube_masking(
    batch: int,
    grid: tuple[int, int, int],
    mask_ratio: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask the same random spatial positions in every time step (MAE-ST's "tube" masking).

    Args:
        grid: (T', h, w) token grid; tokens are ordered (t, h, w).

    Returns:
        keep_index [B, T' * n_keep] sorted, and mask [B, N] bool as in `random_masking`.
    """
    steps, height, width = grid
    spatial = height * width
    keep_spatial, _ = random_masking(batch, spatial, mask_ratio, generator)
    offsets = torch.arange(steps, device="cpu").repeat_interleave(keep_spatial.shape[1]) * spatial
    keep_index = keep_spatial.repeat(1, steps) + offsets
    mask = torch.ones(batch, steps * spatial, dtype=torch.bool, device="cpu")
    mask.scatter_(1, keep_index, False)
    return keep_index, mask


@gin.configurable("MAEDecoder")
class MAEDecoder(nn.Module):
    """MAE-ST decoding: the encoder runs on the visible tokens; a light transformer decoder
    (its blocks' MLPs `mlp_ratio` times its width) gets them scattered back into a full grid of
    learned mask tokens and predicts the pixels of every tubelet. The loss counts the masked
    tubelets only."""

    parameter_inits = {
        "pos_embed": Init("trunc_normal", 0.02),
        "mask_token": Init("normal", 0.02),
    }
    loss_on_every_patch = False
    query_tokens = 0  # tokens it adds to the encoder's blocks

    def __init__(
        self,
        encoder_width: int,
        num_tokens: int,
        patch_dim: int,
        cfg: MAEConfig,
        backend: str,
        mlp_ratio: int = 4,
    ):
        super().__init__()
        width = cfg.decoder_width
        self.embed = nn.Linear(encoder_width, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, width))
        self.blocks = nn.ModuleList(
            Block(width, cfg.decoder_heads, mlp_ratio * width, backend)
            for _ in range(cfg.decoder_depth)
        )
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, patch_dim)

    @property
    def reader(self) -> nn.Linear:
        """The layer that reads the encoder's width (a hidden matrix for muP)."""
        return self.embed

    def forward(
        self, encoder: VideoViT, video: torch.Tensor, keep_index: torch.Tensor
    ) -> torch.Tensor:
        """Encode the visible tubelets, decode every tubelet: video [B, T, H, W, 3] and
        keep_index [B, n_keep] -> pixels [B, N, patch_dim]."""
        return self.decode(encoder(video, keep_index), keep_index)

    def decode(self, visible: torch.Tensor, keep_index: torch.Tensor) -> torch.Tensor:
        """visible [B, n_keep, enc_width], keep_index [B, n_keep] -> pixels [B, N, patch_dim]."""
        x = self.embed(visible)  # [B, n_keep, width]
        batch, _, width = x.shape
        # under autocast the projection is bf16 while the mask token stays fp32
        full = self.mask_token.to(x.dtype).expand(batch, self.pos_embed.shape[1], width).clone()
        full.scatter_(1, keep_index[..., None].expand(-1, -1, width), x)  # [B, N, width]
        x = full + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


class QueryDecoder(nn.Module):
    """The 4DS decoding scheme: no decoder blocks. One learned query token per coarse patch
    joins the visible tokens before the encoder's last `query_blocks` blocks, which process both
    sets; a linear head maps each processed query to its coarse patch of pixels. A coarse patch
    mixes visible and masked tubelets, so the loss counts every one."""

    parameter_inits = {"queries": Init("trunc_normal", 0.02)}
    loss_on_every_patch = True

    def __init__(self, width: int, num_queries: int, patch_dim: int, query_blocks: int):
        super().__init__()
        self.query_blocks = query_blocks
        self.queries = nn.Parameter(torch.zeros(1, num_queries, width))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, patch_dim)

    @property
    def query_tokens(self) -> int:
        """Tokens it adds to the encoder's last blocks."""
        return self.queries.shape[1]

    @property
    def reader(self) -> nn.Linear:
        """The layer that reads the encoder's width (a hidden matrix for muP)."""
        return self.head

    def forward(
        self, encoder: VideoViT, video: torch.Tensor, keep_index: torch.Tensor
    ) -> torch.Tensor:
        """Visible tokens through every encoder block, the queries through the last
        `query_blocks`: video [B, T, H, W, 3] and keep_index [B, n_keep] -> coarse patch pixels
        [B, Q, patch_dim]."""
        first_shared = len(encoder.blocks) - self.query_blocks
        x = encoder.tokens(video, keep_index)  # [B, n_keep, width]
        for block in encoder.blocks[:first_shared]:
            x = block(x)
        queries = self.queries.expand(x.shape[0], -1, -1)  # [B, Q, width]
        x = torch.cat([x, queries], dim=1)  # [B, n_keep + Q, width]
        for block in encoder.blocks[first_shared:]:
            x = block(x)
        return self.head(self.norm(x[:, -self.query_tokens :]))  # the queries' [B, Q, width]


class PixelLoss(nn.Module):
    """The mean squared error of predicted pixels against a clip's target patches: raw pixels
    or, with `norm_pix`, pixels normalised to zero mean and unit variance per target patch;
    over the masked tubelets (`every_patch` False: mae_st) or every target patch (queries).

    A module of its own (no parameters) so that `pretrain.compile` compiles it as one region
    (fourds.train.parallelize): eager, its fp32 passes over every target patch (4DS at 128
    clips: [128, 392, 6144] values, 1.2 GB a pass) cost an H100 several milliseconds a step.
    """

    def __init__(self, target_patch: tuple[int, int, int], norm_pix: bool, every_patch: bool):
        super().__init__()
        self.target_patch, self.norm_pix, self.every_patch = target_patch, norm_pix, every_patch

    def forward(
        self, video: torch.Tensor, prediction: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """video [B, T, H, W, 3] uint8 (or float in [0, 1]), prediction [B, P, patch_dim] in
        any float dtype, mask [B, N] bool (True = masked) -> the scalar loss. Targets, their
        normalisation and the loss are fp32 in every launch mode (autocast, FSDP's bf16 policy,
        fp32)."""
        # cut from the uint8 clip and scaled after (the same values as scaling the whole clip)
        target = as_pixels(patchify(video, self.target_patch))  # [B, P, patch_dim]
        if self.norm_pix:
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        per_patch = ((prediction.float() - target) ** 2).mean(dim=-1)  # [B, P]
        if self.every_patch:
            return per_patch.mean()
        weights = mask.float()
        return (per_patch * weights).sum() / weights.sum()


@gin.configurable("MaskedAutoencoder")
class MaskedAutoencoder(nn.Module):
    """Video MAE: a `VideoViT` encoder on the visible tokens plus an `MAEDecoder` or the 4DS
    `QueryDecoder` (chosen by `cfg.decoder`), each called as decoder(encoder, video, keep_index)
    and predicting the pixels of every target patch."""

    def __init__(self, encoder: VideoViT, cfg: MAEConfig, backend: str = "sdpa"):
        super().__init__()
        self.encoder = encoder
        self.mask_ratio, self.mask_type = cfg.mask_ratio, cfg.mask_type
        self.norm_pix_loss = cfg.norm_pix_loss
        tubelet = encoder.cfg.tubelet
        if cfg.decoder == "queries":
            self.target_patch = tuple(
                size * stride for size, stride in zip(tubelet, cfg.query_stride, strict=True)
            )
            grid = [g // s for g, s in zip(encoder.grid, cfg.query_stride, strict=True)]
            self.decoder = QueryDecoder(
                encoder.cfg.width, grid[0] * grid[1] * grid[2], 3 * math.prod(self.target_patch),
                cfg.query_blocks,
            )  # fmt: skip
        else:
            self.target_patch = tuple(tubelet)
            self.decoder = MAEDecoder(
                encoder.cfg.width, encoder.num_tokens, 3 * math.prod(tubelet), cfg, backend
            )
        every_patch = self.decoder.loss_on_every_patch or cfg.mask_ratio == 0
        self.pixel_loss = PixelLoss(self.target_patch, cfg.norm_pix_loss, every_patch)

    def hidden_matrices(self) -> list[nn.Parameter]:
        """The weights whose input grows with the encoder's width (muP's hidden matrices):
        every linear layer's in the encoder blocks, and the decoder's `reader` (mae_st's input
        projection, the queries' pixel head). Not the tubelet embedding (its input is pixels)
        nor the decoder's own blocks (their width is the decoder's)."""
        blocks = [m.weight for m in self.encoder.blocks.modules() if isinstance(m, nn.Linear)]
        return blocks + [self.decoder.reader.weight]

    def sample_masks(
        self, batch: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks for `batch` clips: keep_index [B, n_keep], mask [B, N] (see random_masking)."""
        if self.mask_type == "tube":
            return tube_masking(batch, self.encoder.grid, self.mask_ratio, generator)
        return random_masking(batch, self.encoder.num_tokens, self.mask_ratio, generator)

    def forward(
        self, video: torch.Tensor, keep_index: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode the visible tokens, predict pixels, and score them.

        Args:
            video: [B, T, H, W, 3], uint8 in [0, 255] (as the loader delivers it; scaled where
                it is cut into tubelets, so FSDP's mixed-precision policy does not cast it) or
                float in [0, 1].
            keep_index: [B, n_keep] visible token indices, mask: [B, N] bool (True = masked),
                from `sample_masks` (drawn outside so that data-parallel ranks can share them).

        Returns:
            loss: the scalar fp32 loss (`PixelLoss`).
            prediction: [B, P, 3 * prod(target_patch)] predicted pixels of every target patch
                (tubelets for mae_st, coarse patches for queries), in `patchify` order, in the
                compute dtype (bf16 under autocast or FSDP's bf16 policy; no fp32 copy is made
                for the caller).
        """
        keep_index, mask = keep_index.to(video.device), mask.to(video.device)
        # The encoder embeds only the visible tubelets, scaled once cut out.
        prediction = self.decoder(self.encoder, video, keep_index)
        return self.pixel_loss(video, prediction, mask), prediction
