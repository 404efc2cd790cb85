"""The 4DS attention readout on frozen encoder features.

LayerNorm on the features of one intermediate block; features upsampled in time (cubic) to the
input frame count; a learned temporal position embedding; one cross-attention from the queries
to all feature tokens with a residual; LayerNorm and a GELU MLP (4x) with a residual; a linear
output.

Queries are learned (`num_queries` of them: depth, pose, classification) or given per clip
(point tracking: a query point; box tracking: a first-frame box). A given query is described by
`query_dim` numbers whose first three are its (t, y, x) location normalised to [0, 1] (raster
convention: t = (frame + 0.5) / T, y = row / H, x = column / W); its token is a learned base
query plus a Fourier embedding of the description plus the features sampled at its location.

The output layer starts at zero: tasks define their outputs so that zero is a neutral
prediction (log-depth 0, the identity pose, a point or box that stays where it was given).
`start_from` adds fixed outputs to every prediction (a task's no-learning baseline, e.g. each
pixel's mean training log-depth), so that a readout starts from that baseline instead.

Two numerical conventions (fourds.models.conventions): fourds' readouts normalise the
features, then upsample them with torch's bicubic kernel (Keys a = -0.75, clamped edges) and
use exact GELU and torch's LayerNorm; a readout converted from the official 4DS checkpoint
("official") resizes first with JAX's cubic kernel (`jax.image.resize(method="cubic")`: Keys
a = -0.5, taps outside the input dropped and the rest renormalised), then normalises, and uses
tanh GELU and Flax's one-pass LayerNorm variance, as the official model does.
"""

from __future__ import annotations

import math

import gin
import torch
import torch.nn.functional as F
from torch import nn

from fourds.models.attention import Attention
from fourds.models.conventions import CONVENTIONS
from fourds.models.folded_norm import project_normalized
from fourds.models.vit import MLP

FOURIER_BANDS = 8


def readout_block_count(depth: int, readout_depth: float, convention: str = "fourds") -> int:
    """How many encoder blocks to run for a readout at fraction `readout_depth` (in (0, 1]) of
    the depth.

    The released 4DS code lists the token embedding, then the input of every block (depth + 1
    entries: the embedding twice, the last block's output never) and reads entry
    e = int((depth + 1) * readout_depth) - 1, the output of e - 1 blocks: 10 of 12 for 4DS-B at
    0.95. The "official" convention counts as that code does: entries 0 and 1 are the token
    embedding (0 blocks), and e = -1 (readout_depth below 1 / (depth + 1)) is Python's last
    entry, the output of depth - 1 blocks. fourds' own readouts read at least one block.
    """
    entry = int((depth + 1) * readout_depth) - 1
    if convention == "official":
        return depth - 1 if entry < 0 else max(0, entry - 1)
    return max(1, entry - 1)


def keys_cubic(distance: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Keys' cubic convolution kernel at `distance` (any shape), zero beyond 2."""
    d = distance.abs()
    near = ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
    far = a * (((d - 5.0) * d + 8.0) * d - 4.0)
    return torch.where(d < 1.0, near, torch.where(d < 2.0, far, torch.zeros_like(d)))


def cubic_resize_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """[size_out, size_in] float64 weights of an upsampling cubic resize as JAX's: half-pixel
    centres, the Keys a = -0.5 kernel, each output's weights over the input's samples
    renormalised to sum to 1 (so the edges are not pulled towards zero)."""
    if size_out < size_in:
        raise ValueError(f"a cubic upsample from {size_in} to {size_out} samples shrinks")
    centres = (torch.arange(size_out, dtype=torch.float64) + 0.5) * size_in / size_out - 0.5
    weights = keys_cubic(centres[:, None] - torch.arange(size_in, dtype=torch.float64))
    return weights / weights.sum(dim=1, keepdim=True)


def torch_bicubic_resize_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """[size_out, size_in] float64 weights of torch's bicubic upsample along one axis
    (`F.interpolate(mode="bicubic", align_corners=False)`: half-pixel centres, Keys a = -0.75,
    clamped edges), read off by resizing each unit vector. A matrix product applies it several
    times faster than `F.interpolate`, whose bicubic backward dominated a readout step on CPU."""
    if size_out < size_in:
        raise ValueError(f"a cubic upsample from {size_in} to {size_out} samples shrinks")
    unit_vectors = torch.eye(size_in, dtype=torch.float64).reshape(1, size_in, size_in, 1)
    resized = F.interpolate(unit_vectors, size=(size_out, 1), mode="bicubic", align_corners=False)
    return resized[0, :, :, 0].T


RESIZE_MATRICES = {"fourds": torch_bicubic_resize_matrix, "official": cubic_resize_matrix}


class FourierEmbedding(nn.Module):
    """[..., dim] numbers in [0, 1] -> [..., width]: sin/cos at 2^0..2^(bands-1) pi, linear."""

    def __init__(self, dim: int, width: int, bands: int = FOURIER_BANDS):
        super().__init__()
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(bands), persistent=False)
        self.linear = nn.Linear(dim * 2 * bands, width)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        angles = (values[..., None] * self.frequencies).flatten(-2)
        return self.linear(torch.cat([angles.sin(), angles.cos()], dim=-1))


@gin.configurable("AttentionReadout")
class AttentionReadout(nn.Module):
    """Cross-attention readout from learned or given queries to frozen features.

    Args:
        feature_dim: width of the encoder features.
        grid: the encoder's (T', h, w) token grid.
        frames: input frame count T (features are upsampled in time to it).
        width, heads: the readout's width and attention heads.
        num_queries: learned queries (ignored when `query_dim` > 0).
        query_dim: numbers describing each given query (0: the queries are learned).
        out_dim: outputs per query.
        backend: attention backend.
        convention: "fourds" or "official" (converted official weights; see the module doc).
    """

    def __init__(
        self,
        feature_dim: int,
        grid: tuple[int, int, int],
        frames: int,
        width: int,
        heads: int,
        num_queries: int,
        query_dim: int,
        out_dim: int,
        backend: str = "sdpa",
        convention: str = "fourds",
    ):
        super().__init__()
        if convention not in CONVENTIONS:
            raise ValueError(f"convention {convention!r} is not one of {list(CONVENTIONS)}")
        self.grid, self.frames, self.convention = grid, frames, convention
        resize_matrix = RESIZE_MATRICES[convention]
        self.register_buffer(
            "time_resize", resize_matrix(grid[0], frames).float(), persistent=False
        )
        gelu, layer_norm = CONVENTIONS[convention]
        self.feature_norm = layer_norm(feature_dim, eps=1e-6)
        self.temporal_embed = nn.Parameter(torch.zeros(1, frames, 1, feature_dim))
        self.queries = nn.Parameter(torch.zeros(1, 1 if query_dim else num_queries, width))
        if query_dim:
            self.query_embed = FourierEmbedding(query_dim, width)
            self.query_features = nn.Linear(feature_dim, width)
        self.cross_attn = Attention(width, heads, backend, context_dim=feature_dim)
        self.norm = layer_norm(width, eps=1e-6)
        self.mlp = MLP(width, 4 * width, gelu=gelu)
        self.head = nn.Linear(width, out_dim)
        nn.init.trunc_normal_(self.temporal_embed, std=0.02)
        nn.init.trunc_normal_(self.queries, std=0.02)
        self.apply(_init_weights)
        nn.init.zeros_(self.head.weight)  # every task starts from its neutral prediction
        nn.init.zeros_(self.head.bias)
        # added to the outputs (`start_from`): zero, or a task's no-learning prediction
        self.register_buffer("start", torch.zeros(1, 1, out_dim), persistent=False)

    def start_from(self, outputs: torch.Tensor) -> None:
        """Start from fixed outputs [num_queries or 1, out_dim] (a task's no-learning
        baseline): they are added to every prediction, so the zero-initialised head learns
        what the features add to them."""
        self.start = outputs.detach().to(self.start).reshape(1, -1, self.start.shape[-1])

    def upsample_in_time(
        self, features: torch.Tensor, per_frame: torch.Tensor | None = None
    ) -> torch.Tensor:
        """features [B, T'*h*w, D] -> [B, T, h*w, D], cubic in time (half-pixel centres):
        torch's bicubic, or JAX's cubic for the official convention, as one [T, T'] matrix;
        plus `per_frame` [1, T, 1, D] inside the same product, where given (its gradient then
        sums over the batch alone, a contiguous reduction, not over the batch and the places:
        3-6% of a readout step)."""
        batch, _, dim = features.shape
        steps, height, width = self.grid
        x = features.reshape(batch, steps, height * width * dim)
        resize = self.time_resize.to(x.dtype)
        if per_frame is None:
            x = torch.matmul(resize, x)  # [T, T'] @ [B, T', h*w*D]
        else:
            added = per_frame.expand(-1, -1, height * width, -1).flatten(2)  # [1, T, h*w*D]
            x = torch.baddbmm(added, resize.expand(batch, -1, -1), x)
        return x.reshape(batch, self.frames, height * width, dim)

    def _upsampled_keys_values(self, features: torch.Tensor) -> torch.Tensor:
        """The cross-attention's keys and values of the upsampled context, [B, T*h*w, 2*width],
        from the features [B, T'*h*w, D], normalised and projected before upsampling: the
        resize is linear with rows summing to one, so kv(resize(f) + e) = resize(kv(f)) +
        W_kv e, on T' frames instead of T (exact up to rounding; the norm folded into the
        projection for frozen features, fourds.models.folded_norm)."""
        projection = self.cross_attn.kv
        projected = project_normalized(features, self.feature_norm, projection)
        embedded = F.linear(self.temporal_embed, projection.weight)  # [1, T, 1, 2*width]
        return self.upsample_in_time(projected, embedded).flatten(1, 2)

    def attends_in_feature_space(self) -> bool:
        """Whether `attend_in_feature_space` is the cheaper way to attend: learned queries,
        fourds' convention, and queries x heads below the width (per context token it costs
        2 x queries x heads products of the feature width, the key/value projection 2 x width;
        classification's one query)."""
        learned = not hasattr(self, "query_embed") and self.convention == "fourds"
        return learned and self.queries.shape[1] * self.cross_attn.heads < self.queries.shape[2]

    def attend_in_feature_space(self, features: torch.Tensor) -> torch.Tensor:
        """The cross-attention of the learned queries over the upsampled context, [B, Q, width]
        from features [B, T'*h*w, D], without projecting the context to keys and values. Per
        head, with the context c = resize(f) + e (f the normalised features, e the temporal
        embedding) and the head's key and value maps (W_k, b_k), (W_v, b_v):

            scores = q . (W_k c + b_k) = (W_k^T q) . c + const     (softmax drops the const)
            output = sum_n a_n (W_v c_n + b_v) = W_v (sum_n a_n c_n) + b_v

        and as the resize is linear, (W_k^T q) . resize(f) = resize(f . W_k^T q) and
        sum_n a_n resize(f)_n = sum_m (resize^T a)_m f_m: every product is on the T' frames
        of the features. The same function as `cross_attn` on `_upsampled_keys_values`, up to
        rounding."""
        attn, batch = self.cross_attn, features.shape[0]
        steps, height, width = self.grid
        queries, dim = self.queries.shape[1:]
        head_dim = dim // attn.heads
        key_map, value_map = attn.kv.weight.view(2, attn.heads, head_dim, -1).unbind(0)
        value_bias = attn.kv.bias.view(2, attn.heads, head_dim)[1]  # [H, d]
        q = attn.q(self.queries[0]).view(queries, attn.heads, head_dim) / math.sqrt(head_dim)
        directions = torch.einsum("qhj,hjd->qhd", q, key_map)  # [Q, H, D]
        normed = self.feature_norm(features).view(batch, steps, height * width, -1)
        scores = torch.einsum("bspd,qhd->bqhsp", normed, directions)  # [B, Q, H, T', hw]
        scores = torch.matmul(self.time_resize, scores)  # [B, Q, H, T, hw]
        time_scores = torch.einsum("td,qhd->qht", self.temporal_embed[0, :, 0], directions)
        scores = scores + time_scores[..., None]
        weights = scores.flatten(-2).softmax(-1).view_as(scores)  # [B, Q, H, T, hw]
        # sum_n a_n c_n: the features under resize^T a, plus e under each frame's weight
        pooled = torch.einsum("bqhsp,bspd->bqhd", self.time_resize.T @ weights, normed)
        pooled = pooled + weights.sum(-1) @ self.temporal_embed[0, :, 0]  # [B, Q, H, D]
        heads_out = torch.einsum("bqhd,hjd->bqhj", pooled, value_map) + value_bias
        return attn.proj(heads_out.reshape(batch, queries, dim))

    def sample(self, x: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        """Trilinear samples of x [B, T, h*w, D] at locations [B, Q, 3] (t, y, x) -> [B, Q, D]."""
        batch, frames, _, dim = x.shape
        _, height, width = self.grid
        volume = x.reshape(batch, frames, height, width, dim).permute(0, 4, 1, 2, 3)
        grid = (2.0 * locations.flip(-1) - 1.0)[:, :, None, None]  # (x, y, t) in [-1, 1]
        samples = F.grid_sample(volume, grid, padding_mode="border", align_corners=False)
        return samples[..., 0, 0].transpose(1, 2)

    def forward(self, features: torch.Tensor, queries: torch.Tensor | None = None) -> torch.Tensor:
        """Read out a batch.

        Args:
            features: [B, T'*h*w, D] from the frozen encoder.
            queries: [B, Q, query_dim] given queries, or None for the learned ones.

        Returns:
            [B, Q, out_dim] (Q = num_queries for learned queries).
        """
        if self.attends_in_feature_space():
            x = self.queries + self.attend_in_feature_space(features)
            x = x + self.mlp(self.norm(x))
            return self.head(x) + self.start
        if self.convention == "official":  # resize, then normalise
            x = self.feature_norm(self.upsample_in_time(features)) + self.temporal_embed
            keys_values = self.cross_attn.kv(x.flatten(1, 2))
        else:
            keys_values = self._upsampled_keys_values(features)
            if queries is not None:  # only given queries read the features themselves (`sample`)
                x = self.upsample_in_time(self.feature_norm(features)) + self.temporal_embed
        if queries is None:  # [1, Q, width]: projected once for the whole batch
            tokens = self.queries
        else:
            located = self.query_features(self.sample(x, queries[..., :3].to(x.dtype)))
            tokens = self.queries + self.query_embed(queries.to(x.dtype)) + located
        x = tokens + self.cross_attn(tokens, keys_values=keys_values)
        x = x + self.mlp(self.norm(x))
        return self.head(x) + self.start


@torch.no_grad()
def _init_weights(module: nn.Module) -> None:
    """The readout's initialisation, for `nn.Module.apply`: xavier-uniform Linear weights and
    zero biases, LayerNorm weight 1 and bias 0 (the MAE-ST rules of fourds.models.init, drawn
    from torch's global generator: the readout is never sharded)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        if module.weight is not None:
            nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
