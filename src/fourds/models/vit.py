"""The 4DS video ViT encoder.

Input [B, T, H, W, 3], uint8 in [0, 255] or float in [0, 1]; a tubelet embedding (a 3D
convolution with kernel = stride = tubelet, applied to the tubelets it embeds, so that an MAE
embeds only the visible ones); a learned positional embedding over the (T', h, w) token grid,
added once; pre-LayerNorm transformer blocks with GELU MLPs; no CLS token and no final
LayerNorm. Tokens are ordered (t, h, w), time slowest.
"""

from __future__ import annotations

import gin
import torch
import torch.nn.functional as F
from torch import nn

from fourds.config import ModelConfig
from fourds.models.attention import Attention
from fourds.models.conventions import CONVENTIONS
from fourds.models.init import Init


def patchify(video: torch.Tensor, tubelet: tuple[int, int, int]) -> torch.Tensor:
    """video [B, T, H, W, C] -> patches [B, N, t*p*q*C] in the encoder's (t, h, w) token order."""
    batch, frames, height, width, channels = video.shape
    t, p, q = tubelet
    x = video.reshape(batch, frames // t, t, height // p, p, width // q, q, channels)
    x = x.permute(0, 1, 3, 5, 2, 4, 6, 7)  # [B, T', h, w, t, p, q, C]
    return x.reshape(batch, -1, t * p * q * channels)


def as_pixels(values: torch.Tensor) -> torch.Tensor:
    """uint8 values in [0, 255] -> float32 in [0, 1] (x / 255); float values as float32."""
    return values.float().div(255.0) if values.dtype == torch.uint8 else values.float()


class TubeletEmbedding(nn.Conv3d):
    """A Conv3d with kernel = stride = tubelet (weight [width, 3, t, p, q], bias [width]: the
    parameters, their initialisation and checkpoints are a Conv3d's), applied to tubelets
    already cut out by `patchify`, as one matrix product: [B, n, t*p*q*3] -> [B, n, width].

    The convolution's function with other rounding. Embedding only the n tubelets an MAE keeps
    skips the full clip's convolution, which cuDNN runs slowly (on an H100, 4DS-B at batch
    128: 26 of the step's 81 ms; docs/research/gpu-step.md).
    """

    def __init__(self, width: int, tubelet: tuple[int, int, int]):
        super().__init__(3, width, kernel_size=tubelet, stride=tubelet)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        matrix = self.weight.permute(0, 2, 3, 4, 1).flatten(1)  # [width, t*p*q*3], patchify's order
        return F.linear(patches.to(self.weight.dtype), matrix, self.bias)


class MLP(nn.Sequential):
    """Linear -> GELU (exact, or the tanh approximation for gelu="tanh") -> Linear."""

    def __init__(self, dim: int, hidden: int, bias: bool = True, gelu: str = "none"):
        super().__init__(
            nn.Linear(dim, hidden, bias=bias),
            nn.GELU(approximate=gelu),
            nn.Linear(hidden, dim, bias=bias),
        )


class Block(nn.Module):
    """Pre-LayerNorm transformer block.

    Sequential (default): x + attn(ln1(x)), then + mlp(ln2(.)). Parallel (ViT-22B):
    x + attn(ln1(x)) + mlp(ln1(x)), one LayerNorm shared by both branches. `convention` (a key
    of CONVENTIONS) picks the GELU and the LayerNorm.

    The two branches end in the residual-output projections named in `residual_outputs`
    (fourds.models.init scales their initial bound by mae.residual_init).
    """

    residual_outputs = ("attn.proj", "mlp.2")

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_dim: int,
        backend: str = "sdpa",
        qk_norm: bool = False,
        parallel: bool = False,
        bias: bool = True,
        convention: str = "fourds",
    ):
        super().__init__()
        gelu, layer_norm = CONVENTIONS[convention]
        self.parallel = parallel
        self.norm1 = layer_norm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, backend, qk_norm=qk_norm, bias=bias)
        self.norm2 = nn.Identity() if parallel else layer_norm(dim, eps=1e-6)
        self.mlp = MLP(dim, mlp_dim, bias=bias, gelu=gelu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, N, dim] -> [B, N, dim]."""
        if self.parallel:
            y = self.norm1(x)
            return x + self.attn(y) + self.mlp(y)
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def token_grid(tubelet: tuple[int, int, int], frames: int, size: int) -> tuple[int, int, int]:
    """(T', h, w): the token grid of a frames x size x size clip."""
    t, p, q = tubelet
    return frames // t, size // p, size // q


@gin.configurable("VideoViT")
class VideoViT(nn.Module):
    """Plain video ViT encoder for clips of `frames` x `size` x `size`.


    Built with placeholder weights: `fourds.models.init.initialise` draws the MAE-ST
    initialisation (the factory and the parallelize path call it), or load trained weights.

    convention: "fourds" (exact GELU, torch's LayerNorm) or "official" (tanh GELU and Flax's
    one-pass LayerNorm variance, for converted official weights; see fourds.models.conventions).
    """

    parameter_inits = {"pos_embed": Init("trunc_normal", 0.02)}

    def __init__(
        self,
        cfg: ModelConfig,
        frames: int,
        size: int,
        backend: str = "sdpa",
        convention: str = "fourds",
    ):
        super().__init__()
        if convention not in CONVENTIONS:
            raise ValueError(f"convention {convention!r} is not one of {list(CONVENTIONS)}")
        self.cfg, self.convention = cfg, convention
        self.frames, self.size = frames, size  # the clip shape [frames, size, size, 3] it reads
        self.grid = token_grid(cfg.tubelet, frames, size)
        self.num_tokens = self.grid[0] * self.grid[1] * self.grid[2]
        self.patch_embed = TubeletEmbedding(cfg.width, cfg.tubelet)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, cfg.width))
        self.blocks = nn.ModuleList(
            Block(
                cfg.width,
                cfg.heads,
                cfg.mlp_dim,
                backend,
                qk_norm=cfg.qk_norm,
                parallel=cfg.parallel_blocks,
                bias=cfg.bias,
                convention=convention,
            )
            for _ in range(cfg.depth)
        )

    def tokens(self, video: torch.Tensor, keep_index: torch.Tensor | None = None) -> torch.Tensor:
        """Embedded tokens [B, n or N, width] with positions added, of `video` [B, T, H, W, 3]
        (uint8 or float in [0, 1]): only `keep_index`'s [B, n] tubelets are cut out, scaled to
        [0, 1] and embedded. The tubelets are cast to the embedding's dtype (bf16 under FSDP's
        bf16 policy, which does not cast inputs); autocast casts them itself."""
        patches = patchify(video, self.cfg.tubelet)  # [B, N, t*p*q*3]
        positions = self.pos_embed.expand(len(video), -1, -1)  # [B, N, width]
        if keep_index is not None:
            index = keep_index[..., None]  # [B, n, 1]
            patches = patches.gather(1, index.expand(-1, -1, patches.shape[-1]))
            positions = positions.gather(1, index.expand(-1, -1, positions.shape[-1]))
        return self.patch_embed(as_pixels(patches)) + positions

    def forward(
        self,
        video: torch.Tensor,
        keep_index: torch.Tensor | None = None,
        num_blocks: int | None = None,
    ) -> torch.Tensor:
        """Encode a clip, optionally only some tokens and only the first blocks.

        Args:
            video: [B, T, H, W, 3], uint8 in [0, 255] or float in [0, 1].
            keep_index: [B, n] indices of the tokens to keep (MAE's visible set), or None.
            num_blocks: run only the first `num_blocks` blocks (None: all), for readouts.

        Returns:
            [B, n or N, width] token features.
        """
        x = self.tokens(video, keep_index)
        for block in self.blocks[:num_blocks]:
            x = block(x)
        return x


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (works on the meta device too)."""
    return sum(p.numel() for p in module.parameters())
