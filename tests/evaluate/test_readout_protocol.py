"""The readout protocol that lets readouts beat their no-learning baselines: more training clips
cut from the pretraining segments, readouts that start at their baseline, the depth loss the
headline scores, tracking queries at the first visible frame and static points kept still."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fourds.config.task_options import DepthOptions
from fourds.data.benchmarks import pretrain_clips
from fourds.data.shards import load_split
from fourds.evaluate.metrics import DepthProtocol
from fourds.evaluate.readout import readout_step
from fourds.evaluate.tasks import ClipGeometry, TaskContext, make_task
from fourds.evaluate.tasks.base import select
from fourds.evaluate.tasks.depth import DepthTask
from fourds.evaluate.tasks.tracking import TrackingTask
from fourds.models.readout import AttentionReadout

FRAMES, SIZE = 4, 16
GEOMETRY = ClipGeometry((2, 8, 8), (2, 2, 2), FRAMES, SIZE)
PROTOCOL = DepthProtocol("none", "per_image", (0.001, 80.0))


def write_segments(folder, count: int, frames: int) -> dict[str, np.ndarray]:
    """A pretrain npz shard of `count` segments of `frames` frames whose values say which
    segment and frame they come from."""
    frame = np.arange(frames)[None, :] + 100 * np.arange(count)[:, None]  # [N, T]
    segments = {
        "video": np.broadcast_to(frame[..., None, None, None] % 256, (count, frames, 2, 2, 3)),
        "depth": frame[..., None, None].astype(np.float16) + np.zeros((1, 1, 2, 2), np.float16),
        "tracks": np.broadcast_to(frame[:, None, :, None], (count, 3, frames, 2)).astype(float),
        "visible": np.ones((count, 3, frames), bool),
        "label": np.array([f"l{i}" for i in range(count)]),
    }
    np.savez(
        folder / "pretrain-000.npz", **{k: np.ascontiguousarray(v) for k, v in segments.items()}
    )
    return segments


def test_pretrain_clips_cut_every_segment_first_span_first(tmp_path):
    write_segments(tmp_path, count=3, frames=9)
    keys = ("video", "depth", "tracks", "visible", "label")
    clips = pretrain_clips(tmp_path, keys, 5, frames=2, frame_stride=2)  # spans of 4: 0 and 4
    first_frames = clips["depth"][:, :, 0, 0].astype(int)
    np.testing.assert_array_equal(
        first_frames, [[0, 2], [100, 102], [200, 202], [4, 6], [104, 106]]
    )
    np.testing.assert_array_equal(clips["tracks"][:, 0, :, 0], first_frames)
    assert clips["video"].shape == (5, 2, 2, 2, 3) and clips["visible"].shape == (5, 3, 2)
    assert list(clips["label"]) == ["l0", "l1", "l2", "l0", "l1"]
    more = pretrain_clips(tmp_path, keys, 100, frames=2, frame_stride=2)
    assert len(more["video"]) == 6  # every span of every segment, no more
    again = pretrain_clips(tmp_path, keys, 5, frames=2, frame_stride=2)
    for key in keys:
        np.testing.assert_array_equal(again[key], clips[key])


def test_pretrain_clips_are_none_without_ground_truth_or_shards(tmp_path):
    assert pretrain_clips(tmp_path, ("video", "depth"), 4, 2, 2) is None  # no shards
    write_segments(tmp_path, count=2, frames=8)
    assert pretrain_clips(tmp_path, ("video", "boxes"), 4, 2, 2) is None  # no box truth
    assert pretrain_clips(tmp_path, ("video",), 4, frames=8, frame_stride=2) is None  # too short


def test_pretrain_clips_of_curated_shards_are_cut_as_readout_clips(tiny_shards):
    segments = load_split(tiny_shards, "pretrain", ("video", "extrinsics"))
    clips = pretrain_clips(tiny_shards, ("video", "extrinsics"), 2, frames=4, frame_stride=2)
    np.testing.assert_array_equal(clips["video"], segments["video"][:2, 0:8:2])
    np.testing.assert_array_equal(clips["extrinsics"], segments["extrinsics"][:2, 0:8:2])


def tracking_batch() -> dict[str, torch.Tensor]:
    tracks = torch.arange(FRAMES, dtype=torch.float32)[None, None, :, None].repeat(1, 2, 1, 2)
    visible = torch.tensor([[[False, True, True, False], [True, True, True, True]]])
    return {"tracks": tracks + 4.0, "visible": visible}


def test_tracking_trains_on_queries_at_the_first_visible_frame():
    task = TrackingTask(GEOMETRY, queries="first")
    batch = task.with_queries(tracking_batch(), torch.Generator().manual_seed(0))
    frames = (batch["queries"][..., 0] * FRAMES).long()
    assert frames.tolist() == [[1, 0]]


def test_tracking_keeps_points_with_small_predicted_motion_at_the_query_point():
    queries = torch.tensor([[[0.125, 0.5, 0.25], [0.125, 0.5, 0.25]]])  # (t, y, x)
    outputs = torch.zeros(1, 2, FRAMES, 3)
    outputs[0, 0, :, 0] = 0.05  # 0.8 px: within 0.1 of the frame (1.6 px)
    outputs[0, 1, :, 0] = 0.25  # 4 px
    outputs = outputs.flatten(2)
    kept, _ = TrackingTask(GEOMETRY, static=0.1).predict(outputs, queries)
    moved, _ = TrackingTask(GEOMETRY).predict(outputs, queries)
    start = torch.tensor([0.25 * SIZE, 0.5 * SIZE])
    torch.testing.assert_close(kept[0, 0], start.expand(FRAMES, 2))
    torch.testing.assert_close(kept[0, 1], moved[0, 1])
    torch.testing.assert_close(moved[0, 0, :, 0], torch.full((FRAMES,), 0.3 * SIZE))


def test_a_readout_started_at_its_baseline_scores_the_baseline():
    depth = torch.rand(6, FRAMES, SIZE, SIZE) * 10 + 1
    task = DepthTask(GEOMETRY, PROTOCOL)
    readout = AttentionReadout(8, GEOMETRY.grid, FRAMES, 16, 2, task.num_queries, 0, task.out_dim)
    readout.start_from(task.baseline({"depth": depth})(torch.arange(1), None)[0])
    features = torch.randn(6, 8, 8)
    with torch.no_grad():
        started = task.evaluate(lambda index, _: readout(features[index]), {"depth": depth}, 4)
    baseline = task.evaluate(task.baseline({"depth": depth}), {"depth": depth}, 4)
    assert started.metrics == pytest.approx(baseline.metrics)


def scaled_layouts(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips whose depth is a fixed layout times a per-clip scale (1 or 6), and features that
    hold the scale in one channel amid noise: (features [N, 8, 8], depth [N, T, H, W])."""
    layout = 1.0 + torch.linspace(0, 1, SIZE)[None, :, None].expand(FRAMES, SIZE, SIZE)
    scale = torch.where(torch.rand(count, generator=generator) < 0.5, 1.0, 6.0)
    features = torch.randn(count, 8, 8, generator=generator)
    features[..., 0] = scale[:, None].log()
    return features, layout * scale[:, None, None, None]


@pytest.mark.parametrize("loss", ["abs_rel", "log_l1"])
def test_a_depth_readout_beats_the_layout_baseline_where_the_features_tell(loss):
    generator = torch.Generator().manual_seed(0)
    _, train_depth = scaled_layouts(64, generator)
    _, test_depth = scaled_layouts(32, generator)
    task = DepthTask(GEOMETRY, PROTOCOL)
    baseline = task.evaluate(task.baseline({"depth": train_depth}), {"depth": test_depth}, 16)
    assert baseline.metrics["abs_rel"] > 0.5
    assert trained_depth_abs_rel(loss, features=True) < 0.1


def test_the_abs_rel_loss_is_the_relative_error_plus_a_tenth_of_the_log_l1():
    task = DepthTask(GEOMETRY, PROTOCOL, loss="abs_rel")
    depth = torch.full((1, FRAMES, SIZE, SIZE), 4.0)
    depth[0, 0] = 0.0  # not measured: not in the loss
    outputs = torch.full((1, task.num_queries, task.out_dim), float(np.log(2.0)))
    expected = 0.5 + 0.1 * float(np.log(2.0))
    assert task.loss(outputs, {"depth": depth}).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="abs_rel needs log outputs"):
        DepthTask(GEOMETRY, PROTOCOL, output="linear", loss="abs_rel")


def trained_depth_abs_rel(loss: str, features: bool) -> float:
    """Test AbsRel of a depth readout started at the layout baseline and trained with `loss`
    on `scaled_layouts` clips whose features hold the scale (or, without `features`, noise
    only)."""
    generator = torch.Generator().manual_seed(0)
    (train_x, train_depth), (test_x, test_depth) = (
        scaled_layouts(64, generator),
        scaled_layouts(32, generator),
    )
    if not features:
        train_x[..., 0], test_x[..., 0] = 0.0, 0.0
    task = make_task(
        "depth", GEOMETRY, TaskContext(DepthOptions("none", "per_image", (0.001, 80.0), loss))
    )
    torch.manual_seed(0)
    readout = AttentionReadout(8, GEOMETRY.grid, FRAMES, 16, 2, task.num_queries, 0, task.out_dim)
    train = {"depth": train_depth}
    readout.start_from(task.baseline(train)(torch.arange(1), None)[0])
    optimizer = torch.optim.AdamW(readout.parameters(), lr=3e-3)
    for _ in range(150):
        index = torch.randint(64, (16,), generator=generator)
        readout_step(readout, optimizer, train_x[index], select(train, index), task.loss)
    readout.eval()
    with torch.no_grad():
        trained = task.evaluate(lambda i, _: readout(test_x[i]), {"depth": test_depth}, 16)
    return trained.metrics["abs_rel"]


def test_the_abs_rel_loss_predicts_what_abs_rel_rewards_where_depth_is_uncertain():
    # scale 1 or 6, unknown: the L1 on log-depth predicts between them (AbsRel about 1),
    # AbsRel is least near the smaller (5/12)
    assert trained_depth_abs_rel("abs_rel", False) < 0.6
    assert trained_depth_abs_rel("log_l1", False) > 0.8
