"""The MAE-ST pretraining recipe, re-implemented: model, initialisation, AdamW groups.

A re-implementation (no shared code) of what facebookresearch/mae_st pretrains with
(models_mae.MaskedAutoencoderViT with its main_pretrain.py defaults sep_pos_embed=True,
cls_embed=True, trunc_init=False, and util/misc.add_weight_decay), sized by the caller. It is the
reference `benchmarks/mae_recipe.py` trains fourds' MAE against; `naive_mae_st.py` is the
different, speed-oriented baseline.

Model:
- encoder: Conv3d tubelet embedding; the visible tokens get separable positional embeddings
  (a spatial one [h*w] plus a temporal one [T']); a class token with its own positional
  embedding is prepended; pre-LayerNorm blocks with separate q, k, v projections; a final
  LayerNorm; the class token is dropped before decoding;
- decoder: a linear map to the decoder width, the visible tokens put back into a full grid of
  a learned mask token, a decoder class token prepended, separable decoder positional
  embeddings (plus one for the class token), blocks, a LayerNorm and a linear pixel head;
- loss: mean squared error on the masked tubelets' raw pixels.

Initialisation (`MAESTRecipe.initialize_weights`): positional embeddings and the class token
truncated normal with std 0.02; the mask token normal with std 0.02; the tubelet embedding's
weight xavier-uniform on its [out, in * kernel] view (its bias keeps PyTorch's default); every
Linear xavier-uniform with zero bias; every LayerNorm weight 1, bias 0; the decoder's class token
stays zero.

AdamW groups (`recipe_param_groups`): no weight decay on one-dimensional parameters and biases,
decay on everything else, positional embeddings and tokens included (the recipe passes no skip
list).

Differences from the original, all so that both models do the same work on the same data:
masks come from the caller (fourds' sampler: the same tokens are hidden for both models, and
its visible count rounds where the recipe's truncates); all frames are predicted (the recipe's
default pred_t_dim=8 of 16 frames predicts every other frame); attention uses
torch.nn.functional.scaled_dot_product_attention (the same arithmetic as the recipe's explicit
softmax, so that wall times compare models rather than attention kernels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from naive_mae_st import TransformerBlock
from torch import nn


class SeparateQKVAttention(nn.Module):
    """Multi-head self-attention with separate q, k and v projections (as the recipe's)."""

    def __init__(self, dim: int, heads: int, bias: bool = True):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=bias)
        self.k = nn.Linear(dim, dim, bias=bias)
        self.v = nn.Linear(dim, dim, bias=bias)
        self.proj = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """[B, N, dim] -> [B, heads, N, dim // heads]."""
        batch, length, dim = x.shape
        return x.reshape(batch, length, self.heads, dim // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, N, dim] -> [B, N, dim]."""
        out = F.scaled_dot_product_attention(
            self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        )  # [B, heads, N, head_dim]
        return self.proj(out.transpose(1, 2).flatten(2))


class SeparablePositions(nn.Module):
    """Positional embeddings factored into space and time, plus one for a class token.

    Token (t, s) of the (T', h*w) grid, ordered time slowest, gets spatial[s] + temporal[t].
    """

    def __init__(self, grid: tuple[int, int, int], dim: int):
        super().__init__()
        steps, height, width = grid
        self.spatial = nn.Parameter(torch.zeros(1, height * width, dim))
        self.temporal = nn.Parameter(torch.zeros(1, steps, dim))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self) -> torch.Tensor:
        """-> [1, N, dim] the grid's embeddings (without the class token's)."""
        steps, places = self.temporal.shape[1], self.spatial.shape[1]
        return self.spatial.repeat(1, steps, 1) + self.temporal.repeat_interleave(places, dim=1)


def _gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, N, dim], index [B, n] -> [B, n, dim]."""
    return torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[-1]))


class MAESTRecipe(nn.Module):
    """The recipe's MAE for clips [B, frames, size, size, 3] in [0, 1].

    Args:
        frames, size: clip shape.
        tubelet: (t, p, q) patch size in frames, rows and columns.
        width, depth, heads, mlp_dim, bias: encoder (bias: of the q, k, v projections).
        decoder_width, decoder_depth, decoder_heads: decoder (MLP 4 x width).
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
        bias: bool,
        decoder_width: int,
        decoder_depth: int,
        decoder_heads: int,
    ):
        super().__init__()
        t, p, q = tubelet
        self.tubelet = tubelet
        grid = (frames // t, size // p, size // q)
        self.num_tokens = grid[0] * grid[1] * grid[2]

        self.patch_embed = nn.Conv3d(3, width, kernel_size=tubelet, stride=tubelet)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = SeparablePositions(grid, width)
        self.blocks = nn.ModuleList(
            TransformerBlock(width, mlp_dim, SeparateQKVAttention(width, heads, bias))
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(width, eps=1e-6)

        self.decoder_embed = nn.Linear(width, decoder_width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_width))
        self.decoder_cls_token = nn.Parameter(torch.zeros(1, 1, decoder_width))
        self.decoder_pos = SeparablePositions(grid, decoder_width)
        self.decoder_blocks = nn.ModuleList(
            TransformerBlock(
                decoder_width,
                4 * decoder_width,
                SeparateQKVAttention(decoder_width, decoder_heads, bias),
            )
            for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_width, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_width, t * p * q * 3)
        self.initialize_weights()

    @torch.no_grad()
    def initialize_weights(self) -> None:
        """The recipe's initialisation (see the module docstring)."""
        for positions in (self.pos, self.decoder_pos):
            for embedding in positions.parameters():
                nn.init.trunc_normal_(embedding, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        kernel = self.patch_embed.weight
        nn.init.xavier_uniform_(kernel.view(kernel.shape[0], -1))
        nn.init.normal_(self.mask_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def patchify(self, video: torch.Tensor) -> torch.Tensor:
        """video [B, T, H, W, 3] -> tubelet pixels [B, N, t*p*q*3], tokens in (t, h, w) order."""
        batch, frames, height, width, channels = video.shape
        t, p, q = self.tubelet
        x = video.reshape(batch, frames // t, t, height // p, p, width // q, q, channels)
        return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(batch, self.num_tokens, -1)

    def encode(self, video: torch.Tensor, keep_index: torch.Tensor) -> torch.Tensor:
        """video [B, T, H, W, 3], keep_index [B, n] -> encoded visible tokens [B, n, width]."""
        x = self.patch_embed(video.permute(0, 4, 1, 2, 3)).flatten(2).transpose(1, 2)
        x = _gather_tokens(x + self.pos(), keep_index)  # [B, n, width]
        cls = (self.cls_token + self.pos.cls).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 1:]

    def decode(self, latent: torch.Tensor, keep_index: torch.Tensor) -> torch.Tensor:
        """latent [B, n, width], keep_index [B, n] -> predicted pixels [B, N, t*p*q*3]."""
        x = self.decoder_embed(latent)
        batch, _, width = x.shape
        full = self.mask_token.expand(batch, self.num_tokens, width).clone()
        full.scatter_(1, keep_index[..., None].expand(-1, -1, width), x)  # [B, N, width]
        cls = self.decoder_cls_token + self.decoder_pos.cls
        x = torch.cat([cls.expand(batch, -1, -1), full + self.decoder_pos()], dim=1)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def forward(
        self, video: torch.Tensor, keep_index: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """video [B, T, H, W, 3] in [0, 1], keep_index [B, n], mask [B, N] bool (True = masked)
        -> (masked-tubelet pixel MSE, prediction [B, N, t*p*q*3])."""
        prediction = self.decode(self.encode(video, keep_index), keep_index)
        per_token = ((prediction - self.patchify(video)) ** 2).mean(dim=-1)  # [B, N]
        weights = mask.float()
        return (per_token * weights).sum() / weights.sum(), prediction


def recipe_param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """The recipe's AdamW groups: [{decayed, weight_decay}, {1-D parameters and biases, 0}].

    Like mae_st's util/misc.add_weight_decay without a skip list: a parameter escapes weight
    decay when it is one-dimensional (LayerNorm weights and biases, all biases) or its name
    ends in ".bias"; the rest is decayed, including positional embeddings [1, N, dim] and the
    class and mask tokens [1, 1, dim].
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim == 1 or name.endswith(".bias") else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
