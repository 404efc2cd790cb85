"""A point-tracking readout that moves each query point with the image's global motion
(docs/research/embedded-study.md, section 30).

On the embedded world the attention readout (fourds.models.readout) tracks no better than
static points: it pools every frame's tokens into one vector per query and does not read the
camera's motion from them. Most points move with the camera, and one affine map of the image
per frame, fitted to the true tracks, places them well (TAP-Vid AJ 0.173 on the readout-train
clips, where static points score 0.100). This readout reads such a map from the features and
keeps the attention readout for what differs per point:

1. the image's motion: an affine map per frame, A_t: (x, y) in [-1, 1]^2 -> frame t, read from
   local feature correlations between tubelets (fourds.models.pose_readout's readout, with six
   outputs per frame, an offset from the identity);
2. each query point p, given at frame q, moves with it: p_t = A_t(A_q^-1(p));
3. the attention readout's outputs for the query (per-frame offsets and visibility logits) are
   added to that;
4. a small MLP adds a visibility logit from how far inside the frame p_t lies and the frames
   since the query: a point the camera leaves behind is not visible.

Every output layer starts at zero (the identity map, no offset, logit 0: static points, all
visible, the tracking baseline).
"""

from __future__ import annotations

import torch
from torch import nn

from fourds.models.pose_readout import CorrelationPoseReadout
from fourds.models.readout import AttentionReadout

AFFINE_OUTPUTS = 6  # per frame: the 2x3 affine map's offset from the identity
EDGE_SCALE = 4.0  # the in-frame margin (a fraction of the half frame) is scaled to O(1)


class MotionTrackingReadout(nn.Module):
    """The tracking readout of the module docstring.

    Args:
        points: an AttentionReadout for given (t, y, x) queries with 3 outputs per frame
            (fourds.evaluate.tasks.tracking: x and y offsets as fractions of the frame size,
            a visibility logit).
        motion: a CorrelationPoseReadout with AFFINE_OUTPUTS outputs per frame.
        frames: T, the clip's frame count.
        width: the visibility MLP's width.
    """

    def __init__(
        self,
        points: AttentionReadout,
        motion: CorrelationPoseReadout,
        frames: int,
        width: int = 32,
    ):
        super().__init__()
        self.points, self.motion, self.frames = points, motion, frames
        self.visibility = nn.Sequential(nn.Linear(2, width), nn.GELU(), nn.Linear(width, 1))
        nn.init.zeros_(self.visibility[-1].weight)
        nn.init.zeros_(self.visibility[-1].bias)

    def image_motion(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, T'*h*w, D] -> affine maps [B, T, 2, 3] of centred (x, y) coordinates."""
        offsets = self.motion(features).unflatten(-1, (2, 3))
        return offsets + torch.eye(2, 3, device=offsets.device, dtype=offsets.dtype)

    def forward(self, features: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """features [B, T'*h*w, D], queries [B, Q, 3] (t, y, x) normalised -> [B, Q, 3T]:
        per frame the offset (dx, dy) from the query point as fractions of the frame size and
        a visibility logit, as AttentionReadout's tracking outputs."""
        batch, count = queries.shape[:2]
        frames = self.frames
        maps = self.image_motion(features)  # [B, T, 2, 3]
        query_frame = (queries[..., 0] * frames - 0.5).round().long().clamp(0, frames - 1)
        start = 2 * queries[..., [2, 1]] - 1  # [B, Q, 2] (x, y) in [-1, 1]
        at_query = maps.gather(1, query_frame[..., None, None].expand(batch, count, 2, 3))
        unmoved = torch.linalg.solve(at_query[..., :2], start - at_query[..., 2])  # [B, Q, 2]
        moved = torch.einsum("btij,bqj->bqti", maps[..., :2], unmoved) + maps[:, None, :, :, 2]
        margin = (1 - moved.detach().abs()).amin(-1)  # [B, Q, T], > 0 inside the frame
        since = torch.arange(frames, device=queries.device) - query_frame[..., None]
        described = torch.stack([margin * EDGE_SCALE, since.to(margin.dtype) / frames], -1)
        leaving = self.visibility(described)[..., 0]  # [B, Q, T]
        per_point = self.points(features, queries).unflatten(-1, (frames, 3))
        offsets = per_point[..., :2] + (moved - start[:, :, None]) / 2
        logits = per_point[..., 2] + leaving
        return torch.cat([offsets, logits[..., None]], -1).flatten(-2)
