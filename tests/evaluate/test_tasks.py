"""Each readout task, driven by an oracle readout that outputs the truth, scores perfectly.

This checks the whole chain a task owns (targets, given queries, output layout, prediction,
metric call) on ground truth rendered by the world, independently of any training.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fourds.config import CurateConfig
from fourds.config.schema import TaskOptions
from fourds.config.task_options import DepthOptions, PoseOptions, TrackingOptions
from fourds.data.curate import curate
from fourds.data.shards import load_split
from fourds.evaluate.tasks import ClipGeometry, TaskContext, make_task
from fourds.evaluate.tasks.base import select
from fourds.evaluate.tasks.pose import IDENTITY_6D

FRAMES, SIZE = 4, 16
GEOMETRY = ClipGeometry((2, 8, 8), (2, 2, 2), FRAMES, SIZE)


def context(task, splits, alignment="none", averaging="per_image", pairs="first") -> TaskContext:
    """Task `task`'s context on `splits`: depth scored in [0.001, 80] m as `alignment` and
    `averaging` say, trained on log-L1; pose over `pairs`; tracking queried at random frames."""
    options = {
        "depth": DepthOptions(alignment, averaging, (0.001, 80.0), "log_l1"),
        "pose": PoseOptions(pairs, "attention"),
        "tracking": TrackingOptions("random", 0.0, "attention"),
    }
    return TaskContext(options.get(task, TaskOptions()), splits)


@pytest.fixture(scope="module")
def split(tiny_corpus, tmp_path_factory) -> dict[str, np.ndarray]:
    root = tmp_path_factory.mktemp("curated")
    curate(tiny_corpus, root, CurateConfig(FRAMES, 2, 12, SIZE, 8, 0.0, "center"))
    return load_split(root / "shards", "readout-test")


def oracle_tracking(targets):
    """Outputs that put every query's point exactly on its true track."""
    tracks, visible = targets["tracks"], targets["visible"]

    def infer(index, queries):
        outputs = torch.zeros(*queries.shape[:2], FRAMES, 3)
        for row, clip in enumerate(index):
            for q, (t, y, x) in enumerate(queries[row]):
                frame = int(t * FRAMES)
                here = (tracks[clip, :, frame] - torch.stack([x, y]) * SIZE).norm(dim=-1)
                point = int(torch.argmin(here + 1e6 * ~visible[clip, :, frame]))
                outputs[row, q, :, :2] = tracks[clip, point] / SIZE - torch.stack([x, y])
                outputs[row, q, :, 2] = torch.where(visible[clip, point], 10.0, -10.0)
        return outputs.flatten(2)

    return infer


def test_tracking_oracle_scores_perfectly(split):
    task = make_task("tracking", GEOMETRY, context("tracking", splits=(split,)))
    targets = task.targets(split)
    metrics, predictions, _ = task.evaluate(oracle_tracking(targets), targets, batch_size=2)
    for mode in ("", "strided_"):
        assert metrics[f"{mode}average_jaccard"] == pytest.approx(1.0)
        assert metrics[f"{mode}occlusion_accuracy"] == pytest.approx(1.0)
    queried = ~np.isnan(predictions["tracks"][..., 0, 0])
    np.testing.assert_allclose(
        predictions["tracks"][queried], targets["tracks"].numpy()[queried], atol=1e-4
    )


def test_tracking_training_queries_sit_on_visible_points(split):
    task = make_task("tracking", GEOMETRY, context("tracking", splits=(split,)))
    batch = task.with_queries(task.targets(split), torch.Generator().manual_seed(0))
    t, y, x = batch["queries"].unbind(-1)
    frame = (t * FRAMES).long()
    seen = batch["visible"].gather(-1, frame[..., None])[..., 0]
    assert torch.all(seen == batch["query_valid"])
    position = batch["tracks"].gather(-2, frame[..., None, None].expand(*frame.shape, 1, 2))
    torch.testing.assert_close(torch.stack([x, y], -1) * SIZE, position[..., 0, :])


def test_box_oracle_scores_perfectly(split):
    task = make_task("boxes", GEOMETRY, context("boxes", splits=(split,)))
    targets = task.targets(split)

    def infer(index, queries):
        first = queries[..., None, 3:]
        return (targets["boxes"][index] / SIZE - first).flatten(2)

    metrics, _, _ = task.evaluate(infer, targets, batch_size=1)
    assert metrics["miou"] == pytest.approx(1.0)
    assert metrics["objects"] == int(targets["box_visible"][:, :, 0].sum())


def test_pose_oracle_scores_perfectly_and_has_zero_loss(split):
    task = make_task("pose", GEOMETRY, context("pose", splits=(split,)))
    targets = task.targets(split)
    truth = targets["relative"]
    outputs = torch.cat(
        [truth[..., :3, 0], truth[..., :3, 1], truth[..., :3, 3]], dim=-1
    ) - torch.cat([IDENTITY_6D, torch.zeros(3)])
    metrics, _, _ = task.evaluate(lambda index, queries: outputs[index], targets, batch_size=2)
    assert metrics["rotation_error"] < 0.05 and metrics["end_point_error"] < 1e-4
    assert task.loss(outputs, targets) < 1e-5
    assert task.loss(torch.zeros_like(outputs), targets) > task.loss(outputs, targets)


def test_pose_translation_loss_has_no_kink_at_zero():
    """Clips whose camera does not move pull a small predicted translation back in proportion
    to it (Huber), not at full strength whatever its size (L1): section 34 of the study log."""
    from fourds.evaluate.tasks.pose import TRANSLATION_DELTA, PoseTask

    task = PoseTask(GEOMETRY, "first")
    still = {"relative": torch.eye(4).repeat(1, FRAMES, 1, 1)}
    slopes = []
    for size in (1e-3, 1e-2, 10 * TRANSLATION_DELTA):
        outputs = torch.zeros(1, FRAMES, 9)
        outputs[..., 6] = size
        outputs.requires_grad_(True)
        task.loss(outputs, still).backward()
        slopes.append(outputs.grad[..., 6].sum().item())
    assert slopes[1] == pytest.approx(10 * slopes[0], rel=1e-4)  # proportional near zero
    assert slopes[2] == pytest.approx(TRANSLATION_DELTA / 3, rel=1e-4)  # L1's slope far away


def test_depth_oracle_scores_perfectly(split):
    task = make_task("depth", GEOMETRY, context("depth", alignment="median", splits=(split,)))
    targets = task.targets(split)
    from fourds.models.mae import patchify

    log_depth = patchify(targets["depth"].clamp_min(1e-6).log()[..., None], GEOMETRY.tubelet)
    metrics, _, _ = task.evaluate(lambda index, queries: log_depth[index], targets, batch_size=2)
    assert metrics["abs_rel"] < 1e-3 and metrics["delta1"] == 1.0


def test_classification_oracle_scores_perfectly(split):
    task = make_task("classification", GEOMETRY, context("classification", splits=(split,)))
    targets = task.targets(split)
    logits = torch.nn.functional.one_hot(targets["label"], task.out_dim).float()[:, None]
    metrics, _, _ = task.evaluate(lambda index, queries: logits[index], targets, batch_size=2)
    assert metrics["top1"] == 1.0


@pytest.mark.parametrize(
    "name, options",
    [
        ("depth", {}),
        ("depth", {"averaging": "pooled"}),
        ("pose", {}),
        ("pose", {"pairs": "all"}),
        ("tracking", {}),
        ("boxes", {}),
        ("classification", {}),
    ],
)
def test_every_task_draws_its_examples(split, name, options, tmp_path):
    task = make_task(name, GEOMETRY, context(name, splits=(split,), **options))
    targets = task.targets(split)
    generator = torch.Generator().manual_seed(0)

    def infer(index, queries):
        count = task.num_queries if queries is None else queries.shape[1]
        return 0.01 * torch.randn(len(index), count, task.out_dim, generator=generator)

    metrics, predictions, clips = task.evaluate(infer, targets, batch_size=2)
    # the per-clip values the report bootstraps give back the test-set headline
    weight, value = clips["weight"], clips[task.headline]
    assert len(weight) == len(split["video"]) and np.all(np.isnan(value) == (weight == 0))
    scored = weight > 0
    headline = np.sum(weight[scored] * value[scored]) / weight.sum()
    assert headline == pytest.approx(metrics[task.headline], rel=1e-6)
    shown = torch.arange(1)
    paths = task.draw(
        split["video"][:1],
        select(targets, shown),
        {key: value[:1] for key, value in predictions.items()},
        tmp_path,
    )
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_class_labels_come_from_the_clips_of_every_split():
    train = {"label": np.array(["pan", "orbit", "pan"])}
    test = {"label": np.array(["static", "pan"])}
    task = make_task("classification", GEOMETRY, context("classification", splits=(train, test)))
    assert task.class_names == ("orbit", "pan", "static")
    assert task.targets(train)["label"].tolist() == [1, 0, 1]
    assert task.targets(test)["label"].tolist() == [2, 1]
    with pytest.raises(ValueError, match=r"labels \['dolly'\] are not among the classes"):
        task.targets({"label": np.array(["dolly"])})


def zero_readout(task):
    """An Infer whose outputs are all zero, the neutral start of a trained readout."""
    return lambda index, queries: torch.zeros(
        len(index), task.num_queries if queries is None else queries.shape[1], task.out_dim
    )


@pytest.mark.parametrize("name", ["pose", "tracking", "boxes"])
def test_the_motion_baselines_are_the_neutral_outputs(split, name):
    task = make_task(name, GEOMETRY, context(name, splits=(split,)))
    targets = task.targets(split)
    baseline = task.evaluate(task.baseline(targets), targets, batch_size=2)
    neutral = task.evaluate(zero_readout(task), targets, batch_size=2)
    assert baseline.metrics == neutral.metrics


def test_the_pose_baseline_predicts_no_motion(split):
    task = make_task("pose", GEOMETRY, context("pose", splits=(split,)))
    metrics = task.evaluate(task.baseline(task.targets(split)), task.targets(split), 2).metrics
    assert metrics["translation_error"] == pytest.approx(90.0)


def test_the_classification_baseline_is_the_most_frequent_training_label():
    labels = np.array(["pan", "static", "static", "orbit"])
    task = make_task(
        "classification", GEOMETRY, context("classification", splits=({"label": labels},))
    )
    train = task.targets({"label": labels})
    test = task.targets({"label": np.array(["static", "pan", "static", "static"])})
    metrics = task.evaluate(task.baseline(train), test, batch_size=3).metrics
    assert metrics["top1"] == pytest.approx(0.75)


def test_the_depth_baseline_is_each_pixels_training_mean_in_log_depth():
    task = make_task("depth", GEOMETRY, context("depth", splits=()))
    depth = torch.full((2, FRAMES, SIZE, SIZE), 2.0)
    depth[1] = 8.0
    depth[1, 0, 0, 0] = 0.0  # not measured: the mean of the other clip alone
    infer = task.baseline({"depth": depth})
    predicted = task.predict(infer(torch.tensor([0]), None))[0]
    torch.testing.assert_close(predicted[1:], torch.full_like(predicted[1:], 4.0))
    assert predicted[0, 0, 0].item() == pytest.approx(2.0)
