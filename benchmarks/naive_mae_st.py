"""A straightforward MAE-ST-style video masked autoencoder: the speed baseline.

Written the way a first implementation of MAE-ST ("Masked Autoencoders As Spatiotemporal
Learners", Feichtenhofer et al. 2022) reads, with nothing fused or skipped:

- encoder: tubelet embedding (Conv3d) of the whole clip, learned positional embedding, random
  spacetime masking by sorting noise, pre-LayerNorm transformer blocks on the visible tokens,
  a final LayerNorm;
- attention written out: softmax(q @ k^T * scale) @ v, with the full [N, N] weight matrix
  (no torch.nn.functional.scaled_dot_product_attention);
- decoder: a linear map to the decoder width, learned mask tokens appended and unshuffled back
  into token order, its own positional embedding, transformer blocks over all N tokens, a
  LayerNorm and a linear pixel head;
- loss: mean squared error on the masked tubelets' raw pixels.

It does not share code with fourds.models, so it is an independent baseline; it draws its masks
the same way (same number of visible tokens) so that both do the same work per token.
"""

from __future__ import annotations

import torch
from torch import nn


class ExplicitAttention(nn.Module):
    """Multi-head self-attention with the softmax weights materialised."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, N, dim] -> [B, N, dim]."""
        batch, length, dim = x.shape
        qkv = self.qkv(x).reshape(batch, length, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, heads, N, head_dim]
        weights = (q @ k.transpose(-2, -1)) * self.scale  # [B, heads, N, N]
        weights = weights.softmax(dim=-1)
        out = weights @ v  # [B, heads, N, head_dim]
        return self.proj(out.transpose(1, 2).reshape(batch, length, dim))


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: x + attention(norm(x)), then + MLP(norm(.)) with a GELU MLP.

    `attention` maps [B, N, dim] -> [B, N, dim] (ExplicitAttention here; the MAE-ST recipe
    benchmark passes its own).
    """

    def __init__(self, dim: int, mlp_dim: int, attention: nn.Module):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = attention
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, N, dim] -> [B, N, dim]."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class NaiveMAEST(nn.Module):
    """MAE-ST for clips [B, frames, size, size, 3] in [0, 1].

    Args:
        frames, size: clip shape.
        tubelet: (t, p, q) patch size in frames, rows and columns.
        width, depth, heads, mlp_dim: encoder.
        decoder_width, decoder_depth, decoder_heads: decoder (MLP 4 x width).
        mask_ratio: fraction of tokens hidden from the encoder.
    """

    def __init__(
        self,
        frames: int,
        size: int,
        tubelet: tuple[int, int, int],
        width: int,
        depth: int,
        heads: int,
        mlp_dim: int,
        decoder_width: int,
        decoder_depth: int,
        decoder_heads: int,
        mask_ratio: float,
    ):
        super().__init__()
        t, p, q = tubelet
        self.tubelet = tubelet
        self.mask_ratio = mask_ratio
        self.num_tokens = (frames // t) * (size // p) * (size // q)
        patch_dim = t * p * q * 3

        self.patch_embed = nn.Conv3d(3, width, kernel_size=tubelet, stride=tubelet)
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, self.num_tokens, width))
        self.blocks = nn.ModuleList(
            TransformerBlock(width, mlp_dim, ExplicitAttention(width, heads)) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(width, eps=1e-6)

        self.decoder_embed = nn.Linear(width, decoder_width)
        self.mask_token = nn.Parameter(0.02 * torch.randn(1, 1, decoder_width))
        self.decoder_pos_embed = nn.Parameter(0.02 * torch.randn(1, self.num_tokens, decoder_width))
        self.decoder_blocks = nn.ModuleList(
            TransformerBlock(
                decoder_width, 4 * decoder_width, ExplicitAttention(decoder_width, decoder_heads)
            )
            for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_width, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_width, patch_dim)

    def patchify(self, video: torch.Tensor) -> torch.Tensor:
        """video [B, T, H, W, 3] -> tubelet pixels [B, N, t*p*q*3], tokens in (t, h, w) order."""
        batch, frames, height, width, channels = video.shape
        t, p, q = self.tubelet
        x = video.reshape(batch, frames // t, t, height // p, p, width // q, q, channels)
        x = x.permute(0, 1, 3, 5, 2, 4, 6, 7)
        return x.reshape(batch, self.num_tokens, -1)

    def random_masking(
        self, x: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keep a random subset of tokens per clip, by sorting uniform noise.

        Args:
            x: [B, N, width] embedded tokens.

        Returns:
            visible: [B, n_keep, width] the kept tokens (in shuffled order).
            mask: [B, N] float, 1 where the token is hidden.
            ids_restore: [B, N] the permutation that puts shuffled tokens back in order.
        """
        batch, length, width = x.shape
        keep = max(1, round(length * (1.0 - self.mask_ratio)))
        noise = torch.rand(batch, length, generator=generator).to(x.device)
        ids_shuffle = noise.argsort(dim=1)
        ids_restore = ids_shuffle.argsort(dim=1)
        ids_keep = ids_shuffle[:, :keep]
        visible = torch.gather(x, 1, ids_keep[..., None].expand(-1, -1, width))
        mask = torch.ones(batch, length, device=x.device)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        return visible, mask, ids_restore

    def forward_encoder(
        self, video: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """video [B, T, H, W, 3] -> (encoded visible [B, n_keep, width], mask, ids_restore)."""
        x = self.patch_embed(video.permute(0, 4, 1, 2, 3))  # [B, width, T', h, w]
        x = x.flatten(2).transpose(1, 2) + self.pos_embed  # [B, N, width]
        x, mask, ids_restore = self.random_masking(x, generator)
        for block in self.blocks:
            x = block(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, x: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Encoded visible [B, n_keep, width] -> predicted pixels [B, N, t*p*q*3]."""
        x = self.decoder_embed(x)  # [B, n_keep, decoder_width]
        batch, keep, width = x.shape
        mask_tokens = self.mask_token.expand(batch, self.num_tokens - keep, width)
        x = torch.cat([x, mask_tokens], dim=1)  # [B, N, decoder_width], shuffled order
        x = torch.gather(x, 1, ids_restore[..., None].expand(-1, -1, width))
        x = x + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))

    def forward(
        self, video: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """video [B, T, H, W, 3] in [0, 1] -> (loss, prediction [B, N, t*p*q*3], mask [B, N]).

        The loss is the mean squared error over the masked tubelets' pixels.
        """
        latent, mask, ids_restore = self.forward_encoder(video, generator)
        prediction = self.forward_decoder(latent, ids_restore)
        per_token = ((prediction - self.patchify(video)) ** 2).mean(dim=-1)  # [B, N]
        loss = (per_token * mask).sum() / mask.sum()
        return loss, prediction, mask
