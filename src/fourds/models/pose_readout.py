"""A camera-pose readout on local feature correlations (docs/research/embedded-study.md, pose
readout).

The 4DS attention readout pools features that say what is in a clip, not how the image moved,
and on the embedded world it does not read camera motion at all (translation directions 86-98
degrees off, no better than chance). This readout reads motion explicitly, as optical-flow and
pose networks do with a cost volume:

1. each token's features, less the mean training features at its place in the token grid (a
   running mean over the training batches, frozen at evaluation: it removes the position
   embedding and the average scene, which otherwise make every token most similar to the token
   at its own place in every tubelet), are normalised (LayerNorm), mapped to `proj` numbers
   and scaled to unit length;
2. for every tubelet t, each token of tubelet 0 (and, separately, of tubelet t - 1) is compared
   with the tokens of tubelet t within `radius` tokens: (2 radius + 1)^2 cosine similarities
   per token and pair (`local_correlations`);
3. from each set of similarities a soft-argmax gives the token's displacement (a learned
   temperature), and the similarities and the displacement are also multiplied by the token's
   position in [-1, 1]^2, so that averaging over tokens keeps expansion (a camera moving along
   its view), shear and parallax (a camera moving sideways) apart from a uniform shift (a
   camera turning);
4. a 2-layer GELU MLP per token (its first layer applied as one matrix per token place:
   `first_token_layer`), averaged over the tokens of each tubelet, gives one vector per
   tubelet, which is resized in time (cubic) to the frame count, given a learned embedding per
   frame, passed through a residual GELU MLP and a linear output of 9 numbers per frame
   (fourds.evaluate.tasks.pose: a 6D rotation offset from the identity and a translation).

The output layer starts at zero, the identity pose in every frame (the no-motion baseline), and
`start_from` adds fixed outputs as AttentionReadout's does.
"""

from __future__ import annotations

import gin
import torch
import torch.nn.functional as F
from torch import nn

from fourds.models.folded_norm import project_normalized
from fourds.models.readout import torch_bicubic_resize_matrix


def window_indices(h: int, w: int, radius: int, device: torch.device) -> torch.Tensor:
    """[h*w, (2 radius + 1)^2] flat indices on `device` of the tokens around each token of an
    h x w grid (dy major, then dx, each in -radius..radius); a neighbour outside the grid is
    index h*w."""
    rows, cols = torch.meshgrid(
        torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij"
    )
    steps = torch.arange(-radius, radius + 1, device=device)
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")
    y = rows.reshape(-1, 1) + dy.reshape(1, -1)
    x = cols.reshape(-1, 1) + dx.reshape(1, -1)
    inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    return torch.where(inside, y * w + x, h * w)


def local_correlations(source: torch.Tensor, target: torch.Tensor, radius: int) -> torch.Tensor:
    """Cosine similarities of each source token with the target tokens around it.

    Every pair of tokens is compared in one matrix product and each token's window is then
    gathered from it: on an 8 x 8 grid that is about half the time of comparing the shifted
    grids one offset at a time, forward and backward.

    Args:
        source: [..., h, w, P] unit-length token descriptors of one tubelet per leading index.
        target: [..., h, w, P] those of the tubelets they are compared with; the leading dims
            broadcast against source's.
        radius: the window's half size in tokens; target tokens outside the grid count as zero.

    Returns:
        [..., h*w, (2 radius + 1)^2]: for source token (y, x), its similarity with target token
        (y + dy, x + dx) for dy, dx in -radius..radius, dy major.
    """
    h, w = source.shape[-3:-1]
    similarities = source.flatten(-3, -2) @ target.flatten(-3, -2).transpose(-1, -2)
    similarities = F.pad(similarities, (0, 1))  # [..., hw, hw + 1]: a zero for outside the grid
    index = window_indices(h, w, radius, similarities.device)
    return similarities.gather(-1, index.expand(*similarities.shape[:-1], index.shape[-1]))


@gin.configurable("CorrelationPoseReadout")
class CorrelationPoseReadout(nn.Module):
    """Camera poses from correlations between tubelets (see the module docstring).

    Args:
        feature_dim: D, the encoder's token width.
        grid: (T', h, w), the encoder's token grid.
        frames: T, the clip's frame count (one pose per frame).
        width: the MLPs' width.
        radius: the correlation window's half size, in tokens.
        proj: the length of the token descriptors that are correlated.
        out_dim: numbers per frame (9 for fourds.evaluate.tasks.pose).
    """

    def __init__(
        self,
        feature_dim: int,
        grid: tuple[int, int, int],
        frames: int,
        width: int = 128,
        radius: int = 2,
        proj: int = 32,
        out_dim: int = 9,
    ):
        super().__init__()
        self.grid, self.frames, self.radius = tuple(grid), frames, radius
        _, h, w = self.grid
        self.feature_norm = nn.LayerNorm(feature_dim, eps=1e-6)
        self.proj = nn.Linear(feature_dim, proj)
        axes = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        self.register_buffer("positions", torch.stack(axes, -1).reshape(1, 1, h * w, 2), False)
        steps = torch.arange(-radius, radius + 1, dtype=torch.float32)
        dy, dx = torch.meshgrid(steps, steps, indexing="ij")
        self.register_buffer("offsets", torch.stack([dy, dx], -1).reshape(-1, 2), False)
        self.temperature = nn.Parameter(torch.tensor(10.0))
        window = (2 * radius + 1) ** 2
        per_pair = 3 * window + 6  # similarities, x position, displacement (2), x position (4)
        self.token_mlp = nn.Sequential(
            nn.Linear(2 + 2 * per_pair, width), nn.GELU(), nn.Linear(width, width), nn.GELU()
        )
        resize = torch_bicubic_resize_matrix(self.grid[0], frames).float()
        self.register_buffer("time_resize", resize, persistent=False)
        self.temporal_embedding = nn.Parameter(torch.zeros(1, frames, width))
        self.mlp = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU())
        self.output = nn.Linear(width, out_dim)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)
        self.register_buffer("offset", torch.zeros(out_dim))
        self.register_buffer("token_mean", torch.zeros(grid[0] * grid[1] * grid[2], feature_dim))
        self.register_buffer("clips_seen", torch.zeros((), dtype=torch.float64))

    def centre(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, N, D] less the mean of every training clip's features so far [N, D]; in
        training mode the batch joins the mean first (a cumulative mean: after one pass over
        the training clips it is their mean)."""
        if self.training:
            with torch.no_grad():
                self.clips_seen += features.shape[0]
                weight = features.shape[0] / self.clips_seen  # a tensor: vmap runs it
                self.token_mean += (features.mean(0) - self.token_mean) * weight
        return features - self.token_mean

    def start_from(self, outputs: torch.Tensor) -> None:
        """Add `outputs` [out_dim] (or [frames, out_dim]) to every prediction."""
        self.offset = outputs.detach().clone().to(self.offset)

    def first_token_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The token MLP's first layer as one matrix per token place: ([h*w, 2(K + 2), width],
        [h*w, width]) for K = (2 radius + 1)^2.

        The layer's weights (`token_mlp[0]`) read 2 + 2(3K + 6) numbers per token: its (y, x)
        position p, then for each pair of tubelets (from the first, from the previous) the
        similarities c [K], their products with p [K, 2], the soft-argmax displacement d [2]
        and its products with p [2, 2]. With u = (c, d), A the weights of u and B_y, B_x
        those of u p_y and u p_x, the layer is (A + p_y B_y + p_x B_x) u + (the weights of p)
        p + bias: the first matrix on each place's u, the rest a constant per place. One
        product of [2(K + 2)] numbers per token instead of [2 + 2(3K + 6)], and the products
        with p are never formed: the same function up to rounding, forward and backward.
        """
        layer, window = self.token_mlp[0], (2 * self.radius + 1) ** 2
        width = layer.weight.shape[0]
        per_pair = layer.weight[:, 2:].view(width, 2, 3 * window + 6)
        c, c_by_place, d, d_by_place = per_pair.split([window, 2 * window, 2, 4], -1)
        direct = torch.cat([c, d], -1)  # [width, 2, K + 2]
        by_place = torch.cat(
            [c_by_place.reshape(width, 2, window, 2), d_by_place.reshape(width, 2, 2, 2)], -2
        )  # [width, 2, K + 2, 2]: the weights of u p_y, u p_x
        places = self.positions[0, 0]  # [h*w, 2]
        weights = direct + torch.einsum("wpkj,nj->nwpk", by_place, places)  # [hw, width, 2, K+2]
        constant = places @ layer.weight[:, :2].T + layer.bias  # [h*w, width]
        return weights.flatten(2).transpose(1, 2), constant

    def forward(self, features: torch.Tensor, queries: torch.Tensor | None = None) -> torch.Tensor:
        """features [B, T'*h*w, D] (one block's tokens, time major) -> [B, T, out_dim].

        `queries` is ignored (pose queries are the frames); it keeps AttentionReadout's call."""
        batch = features.shape[0]
        tubelets, h, w = self.grid
        tokens = project_normalized(self.centre(features), self.feature_norm, self.proj)
        tokens = F.normalize(tokens, dim=-1).reshape(batch, tubelets, h, w, -1)
        previous = [max(t - 1, 0) for t in range(tubelets)]
        sources = torch.stack([tokens[:, [0] * tubelets], tokens[:, previous]], 1)
        # tubelet t against tubelet 0 and against tubelet t - 1: [B, 2, T', hw, K]
        correlations = local_correlations(sources, tokens[:, None], self.radius)
        displacement = (correlations * self.temperature).softmax(-1) @ self.offsets
        # each token place's (similarities, displacement) of both pairs: [h*w, B*T', 2(K + 2)]
        inputs = torch.cat([correlations, displacement], -1).permute(3, 0, 2, 1, 4)
        weights, constant = self.first_token_layer()
        x = torch.baddbmm(constant[:, None], inputs.flatten(3).flatten(1, 2), weights)
        x = self.token_mlp[1:](x).sum(0) / (h * w)  # the mean over places: [B*T', width]
        x = x.view(batch, tubelets, -1)
        x = torch.matmul(self.time_resize, x) + self.temporal_embedding  # [B, T, width]
        x = x + self.mlp(x)
        return self.output(x) + self.offset
