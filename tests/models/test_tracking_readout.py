"""The motion tracking readout (fourds.models.tracking_readout)."""

from types import SimpleNamespace

import torch

from fourds.evaluate.tasks.base import ClipGeometry
from fourds.evaluate.tasks.tracking import TrackingTask
from fourds.models.pose_readout import CorrelationPoseReadout
from fourds.models.readout import AttentionReadout
from fourds.models.tracking_readout import AFFINE_OUTPUTS, MotionTrackingReadout
from tests.models.readout_training import train_on_fresh_batches

GRID, FRAMES, DIM, SIZE = (3, 4, 4), 6, 8, 16
GEOMETRY = ClipGeometry((2, 4, 4), GRID, FRAMES, SIZE)


def motion_readout(width: int = 16) -> MotionTrackingReadout:
    points = AttentionReadout(DIM, GRID, FRAMES, width, 2, 0, 3, 3 * FRAMES, backend="math")
    motion = CorrelationPoseReadout(DIM, GRID, FRAMES, width=width, proj=8, out_dim=AFFINE_OUTPUTS)
    return MotionTrackingReadout(points, motion, FRAMES)


def test_it_starts_at_static_points_all_visible():
    torch.manual_seed(0)
    readout = motion_readout()
    features = torch.randn(2, GRID[0] * GRID[1] * GRID[2], DIM)
    queries = torch.rand(2, 5, 3)
    outputs = readout(features, queries)
    assert outputs.shape == (2, 5, 3 * FRAMES)
    positions, logits = TrackingTask(GEOMETRY).predict(outputs, queries)
    start = queries[..., None, [2, 1]].expand(-1, -1, FRAMES, -1) * SIZE
    assert torch.allclose(positions, start, atol=1e-5)
    assert torch.equal(logits, torch.zeros(2, 5, FRAMES))


def test_query_points_move_with_the_image_from_their_own_frame():
    """An image that shifts right by 0.1 (of the half frame) per frame moves a point queried at
    frame 2 by 0.1 x (t - 2) half frames, i.e. 0.05 x (t - 2) of the frame, in frame t."""
    readout = motion_readout()
    with torch.no_grad():
        bias = torch.zeros(FRAMES, AFFINE_OUTPUTS)
        bias[:, 2] = 0.1 * torch.arange(FRAMES)  # x translation of each frame's map
        readout.motion.start_from(bias)
    features = torch.randn(1, GRID[0] * GRID[1] * GRID[2], DIM)
    queries = torch.tensor([[[(2 + 0.5) / FRAMES, 0.3, 0.6]]])
    offsets = readout(features, queries).unflatten(-1, (FRAMES, 3))[0, 0]
    expected = 0.05 * (torch.arange(FRAMES) - 2.0)
    assert torch.allclose(offsets[:, 0], expected, atol=1e-6)
    assert torch.allclose(offsets[:, 1], torch.zeros(FRAMES), atol=1e-6)


def shifting_clips(count: int, generator: torch.Generator):
    """Features of clips whose content moves one token left or right per tubelet, and tracks
    that move with it: points queried at frame 0 on the token grid's middle rows."""
    content = torch.randn(count, 4, 4, DIM, generator=generator)
    direction = torch.randint(0, 2, (count,), generator=generator) * 2 - 1
    pairs = list(zip(content, direction, strict=True))
    tubelets = [torch.stack([c.roll(int(d) * t, dims=1) for c, d in pairs]) for t in range(GRID[0])]
    features = torch.stack(tubelets, 1).reshape(count, -1, DIM)
    start = torch.tensor([[6.0, 6.0], [9.0, 6.0], [6.0, 9.0], [9.0, 9.0]])  # (x, y) pixels
    per_frame = SIZE / GRID[2] * GRID[0] / FRAMES  # one token per tubelet, in pixels per frame
    moved = direction[:, None, None].float() * per_frame * torch.arange(FRAMES)[None, None]
    tracks = start[None, :, None].repeat(count, 1, FRAMES, 1)
    tracks[..., 0] += moved
    visible = (tracks[..., 0] >= 0) & (tracks[..., 0] < SIZE)
    return features, {"tracks": tracks, "visible": visible}, direction


def test_it_learns_which_way_the_image_moves():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    task = TrackingTask(GEOMETRY, queries="first")
    readout = motion_readout(width=32)

    def batch_loss() -> torch.Tensor:  # fresh clips every step
        features, targets, _ = shifting_clips(16, generator)
        batch = task.with_queries(targets, generator)
        return task.loss(readout(features, batch["queries"]), batch)

    losses = train_on_fresh_batches(readout, batch_loss, steps=200)
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])
    readout.eval()
    features, targets, direction = shifting_clips(32, generator)
    batch = task.with_queries(targets, generator)
    with torch.no_grad():
        positions, _ = task.split_outputs(readout(features, batch["queries"]), batch["queries"])
    moved = positions[:, :, -1, 0] - positions[:, :, 0, 0]  # [N, P] x pixels
    assert (moved.sign() == direction[:, None]).float().mean() > 0.9


def test_build_readout_builds_the_head_the_tracking_options_name():
    from fourds.config.task_options import TrackingOptions
    from fourds.evaluate.readout import build_readout
    from fourds.evaluate.tasks import TaskContext, make_task

    encoder = SimpleNamespace(cfg=SimpleNamespace(width=DIM), grid=GRID, frames=FRAMES)

    spec = SimpleNamespace(own=SimpleNamespace(width=16, heads=2), attention="math")

    def tracking(head: str) -> TrackingTask:
        return make_task("tracking", GEOMETRY, TaskContext(TrackingOptions("first", 0.1, head)))

    assert isinstance(build_readout(encoder, tracking("motion"), spec), MotionTrackingReadout)
    assert isinstance(build_readout(encoder, tracking("attention"), spec), AttentionReadout)
