"""The correlation pose readout (fourds.models.pose_readout)."""

import torch

from fourds.evaluate.tasks.base import ClipGeometry
from fourds.evaluate.tasks.pose import PoseTask
from fourds.models.pose_readout import CorrelationPoseReadout, local_correlations
from tests.models.readout_training import train_on_fresh_batches

GRID, FRAMES, DIM = (3, 4, 4), 6, 8


def test_local_correlations_find_a_shift():
    torch.manual_seed(0)
    source = torch.nn.functional.normalize(torch.randn(2, 4, 4, 5), dim=-1)
    target = torch.roll(source, shifts=1, dims=2)  # every token moves one to the right
    values = local_correlations(source, target, radius=1)
    assert values.shape == (2, 16, 9)
    # token (y, x) with x < 3 finds itself at (y, x + 1): offset (dy, dx) = (0, 1), index 5
    inside = values.reshape(2, 4, 4, 9)[:, :, :3]
    assert torch.allclose(inside[..., 5], torch.ones(()), atol=1e-6)
    assert (inside.argmax(-1) == 5).all()


def test_local_correlations_are_the_dot_products_of_each_window_for_every_pair():
    torch.manual_seed(0)
    h, w, radius, size = 3, 5, 2, 5
    source = torch.nn.functional.normalize(torch.randn(2, 3, h, w, 4), dim=-1)
    target = torch.nn.functional.normalize(torch.randn(2, 1, h, w, 4), dim=-1)  # broadcast
    values = local_correlations(source, target, radius)
    assert values.shape == (2, 3, h * w, size * size)
    for y, x, dy, dx in [(0, 0, -2, -2), (1, 2, 0, 1), (2, 4, 1, -2), (2, 4, 0, 1), (0, 3, 2, 2)]:
        window = (dy + radius) * size + (dx + radius)
        inside = 0 <= y + dy < h and 0 <= x + dx < w
        expected = (
            (source[:, :, y, x] * target[:, :, y + dy, x + dx]).sum(-1)
            if inside
            else torch.zeros(2, 3)
        )
        assert torch.allclose(values[:, :, y * w + x, window], expected, atol=1e-6)


def test_shapes_and_the_no_motion_start():
    readout = CorrelationPoseReadout(DIM, GRID, FRAMES, width=16)
    features = torch.randn(2, GRID[0] * GRID[1] * GRID[2], DIM)
    outputs = readout(features)
    assert outputs.shape == (2, FRAMES, 9)
    assert (outputs == 0).all()  # zero outputs: the identity pose, the no-motion baseline
    poses = PoseTask(ClipGeometry((2, 4, 4), GRID, FRAMES, 16), "first").predict(outputs)
    assert torch.equal(poses, torch.eye(4).expand(2, FRAMES, 4, 4))
    readout.start_from(torch.arange(9.0))
    assert torch.equal(readout(features)[0, 0], torch.arange(9.0))


def test_the_first_token_layer_per_place_is_the_linear_layer_on_each_tokens_description():
    """`first_token_layer` folds the token's place into the weights: it must equal token_mlp[0]
    on the description the readout is defined on (place, then per pair the similarities, their
    products with the place (y, x interleaved), the displacement and its products)."""
    torch.manual_seed(0)
    readout = CorrelationPoseReadout(DIM, GRID, FRAMES, width=16, radius=1)
    readout.token_mlp[0].bias.data.normal_()
    places = readout.positions[0, 0]  # [h*w, 2]
    similarities, displacement = torch.randn(5, 2, 16, 9), torch.randn(5, 2, 16, 2)

    def described(pair: int) -> torch.Tensor:
        by_place = (similarities[:, pair, :, :, None] * places[:, None]).flatten(-2)
        moved = (displacement[:, pair, :, :, None] * places[:, None]).flatten(-2)
        return torch.cat([similarities[:, pair], by_place, displacement[:, pair], moved], -1)

    description = torch.cat([places.expand(5, -1, -1), described(0), described(1)], -1)
    expected = readout.token_mlp[0](description)  # [5, h*w, width]
    weights, constant = readout.first_token_layer()
    inputs = torch.cat([similarities, displacement], -1).permute(2, 0, 1, 3).flatten(2)
    folded = torch.baddbmm(constant[:, None], inputs, weights)  # [h*w, 5, width]
    torch.testing.assert_close(folded.transpose(0, 1), expected, rtol=1e-5, atol=1e-5)


def test_centring_uses_the_training_mean_and_is_frozen_in_eval():
    readout = CorrelationPoseReadout(DIM, GRID, FRAMES, width=16)
    first, second = torch.randn(3, 48, DIM), torch.randn(5, 48, DIM)
    readout(first)
    readout(second)
    expected = torch.cat([first, second]).mean(0)
    assert torch.allclose(readout.token_mean, expected, atol=1e-5)
    readout.eval()
    readout(torch.randn(4, 48, DIM) + 100.0)
    assert torch.allclose(readout.token_mean, expected, atol=1e-5)
    # a clip identical in every tubelet except for an offset common to all clips: centred away
    assert torch.allclose(readout.centre(expected[None]), torch.zeros(1, 48, DIM), atol=1e-5)


def shifting_clips(
    count: int, position: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of clips whose content moves one token left or right per tubelet, on top of
    `position` [1, 1, 4, 4, DIM] (a position embedding), and the pose targets:
    camera-0-to-camera-t with translation -direction * t along x."""
    content = torch.randn(count, 1, 4, 4, DIM, generator=generator)
    direction = torch.randint(0, 2, (count,), generator=generator) * 2 - 1
    tubelets = [
        torch.stack(
            [
                torch.roll(c, int(d) * t, dims=1)
                for c, d in zip(content[:, 0], direction, strict=True)
            ]
        )
        for t in range(GRID[0])
    ]
    features = (torch.stack(tubelets, 1) + position).reshape(count, -1, DIM)
    relative = torch.eye(4).repeat(count, FRAMES, 1, 1)
    relative[..., 0, 3] = -direction[:, None].float() * torch.arange(FRAMES) / FRAMES
    return features, relative


def test_trains_on_a_tiny_example():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    task = PoseTask(ClipGeometry((2, 4, 4), GRID, FRAMES, 16), "first")
    readout = CorrelationPoseReadout(DIM, GRID, FRAMES, width=32, radius=2, proj=8)
    position = torch.randn(1, 1, 4, 4, DIM, generator=generator) * 3.0

    def batch_loss() -> torch.Tensor:  # fresh clips every step
        features, relative = shifting_clips(16, position, generator)
        return task.loss(readout(features), {"relative": relative})

    losses = train_on_fresh_batches(readout, batch_loss, steps=300)
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])
    readout.eval()
    test_features, test_relative = shifting_clips(32, position, generator)
    with torch.no_grad():
        predicted = readout(test_features)[:, -1, 6]
    assert (predicted.sign() == test_relative[:, -1, 0, 3].sign()).float().mean() > 0.9


def test_build_readout_builds_the_head_the_pose_options_name():
    from types import SimpleNamespace

    from fourds.config.task_options import PoseOptions
    from fourds.evaluate.readout import build_readout
    from fourds.evaluate.tasks import TaskContext, make_task
    from fourds.models.readout import AttentionReadout

    encoder = SimpleNamespace(cfg=SimpleNamespace(width=DIM), grid=GRID, frames=FRAMES)
    spec = SimpleNamespace(own=SimpleNamespace(width=16, heads=2), attention="math")
    geometry = ClipGeometry((2, 4, 4), GRID, FRAMES, 16)

    def pose(head: str) -> PoseTask:
        return make_task("pose", geometry, TaskContext(PoseOptions("first", head)))

    assert isinstance(build_readout(encoder, pose("correlation"), spec), CorrelationPoseReadout)
    assert isinstance(build_readout(encoder, pose("attention"), spec), AttentionReadout)
