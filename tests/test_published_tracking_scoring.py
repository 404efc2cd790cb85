"""The commands that score an encoder on Perception Test point tracking and Waymo Open box
tracking (docs/benchmarks.md gives them), run as written on files the test writes in the two
benchmarks' published layouts (tests.benchmark_files): a fourds checkpoint and an official
release converted by `fourds convert` each train and score both readouts; a missing file stops
`fourds readout` with one line naming where the data comes from and its terms.

The workspace is tests/test_scoring_recipe.py's: the config tree, a tiny fourds encoder at
runs/pretrain/cpu_l and a randomly initialised backbone `scaling4d_dist_b.npz` in the released
layout, both on 4-frame 16x16 clips."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fourds.models.weights import load_encoder
from tests import test_scoring_recipe as recipe
from tests.benchmark_files import write_perception_test, write_waymo
from tests.conftest import doc_commands, run_fourds
from tests.test_scoring_recipe import words

workspace, clip_shapes = recipe.workspace, recipe.clip_shapes  # its fixtures, used here

# docs/benchmarks.md, "Scoring an encoder on Perception Test and Waymo Open": a fourds
# checkpoint's block, then an official release's
SECTION = "Scoring an encoder on Perception Test and Waymo Open"
# the tiny corpus' readout-train and readout-test videos (12 frames) give 3 clips each
FORMATS = {"tracking": "perception_test", "boxes": "waymo_open"}
HEADLINES = {"tracking": "average_jaccard", "boxes": "miou"}
CLIPS = 3


def write_published(root: Path, corpus: Path) -> None:
    """Perception Test under perception_test/, Waymo Open's v2 components under waymo_open/."""
    write_perception_test(corpus, root / "perception_test")
    write_waymo(corpus, root / "waymo_open")


def run_block(root: Path, corpus: Path, block: list[str]) -> list[dict]:
    """Write both benchmarks and run the block as tests/test_scoring_recipe.py runs its own
    (`recipe.run_commands`: as written, the readouts on the short schedule)."""
    write_published(root, corpus)
    return recipe.run_commands(root, block, recipe.short_schedule(FORMATS))


def check_scored(metrics: dict) -> None:
    """A readout trained on the benchmark's train split and scored on its test split, with the
    task's headline: average Jaccard (Perception Test), mean IoU (Waymo Open)."""
    task = metrics["options"]["--task"]
    assert metrics["task"] == task and metrics["source"] == FORMATS[task]
    assert metrics["readout"] == "trained" and metrics["regime"] == "frozen"
    assert (metrics["train_clips"], metrics["test_clips"]) == (CLIPS, CLIPS)
    assert metrics["headline"] == HEADLINES[task] and 0 <= metrics[HEADLINES[task]] <= 1
    assert math.isfinite(metrics["final_train_loss"]) and HEADLINES[task] in metrics["baseline"]
    record = (Path(metrics["options"]["--out"]) / "run.yaml").read_text()
    read = ("all_valid.json", "video_0001.mp4") if task == "tracking" else ("camera_box",)
    assert all(name in record for name in read), read  # the files read, hashed


@pytest.mark.slow
def test_a_fourds_checkpoint_is_scored_on_both_published_benchmarks(
    workspace,
    tiny_corpus,
    clip_shapes,
):
    results = run_block(workspace, tiny_corpus, doc_commands(SECTION, 0))
    assert [metrics["task"] for metrics in results] == ["tracking", "boxes"]
    for metrics in results:
        check_scored(metrics)
    assert set(clip_shapes) == {(4, 16)}  # the checkpoint's clips


@pytest.mark.slow
def test_an_official_release_is_scored_on_both_published_benchmarks(
    workspace,
    tiny_corpus,
    clip_shapes,
):
    block = doc_commands(SECTION, 1)
    results = run_block(workspace, tiny_corpus, block)
    converted = words(block[0])[-1]
    assert load_encoder(converted).convention == "official"
    for metrics in results:
        assert metrics["options"]["--pretrained"] == converted
        check_scored(metrics)
    assert set(clip_shapes) == {(4, 16)}  # the converted file's clips


def test_a_missing_file_stops_the_readout_with_one_line_naming_the_terms(
    workspace,
    tiny_corpus,
    capsys,
):
    write_published(workspace, tiny_corpus)
    params, *_ = doc_commands(SECTION, 0)
    assert run_fourds(params) == 0
    capsys.readouterr()
    (workspace / "perception_test" / "all_valid.json").unlink()
    (workspace / "waymo_open" / "training" / "camera_box").rename(workspace / "boxes")
    lines = []
    for task in ("tracking", "boxes"):
        command = f"fourds readout --params published.yaml --scale cpu_l --task {task} "
        command += f"--pretrained runs/pretrain/cpu_l/checkpoint.pt --out runs/{task}"
        assert run_fourds(command) == 2
        lines.append(capsys.readouterr().err)
    segment = next((workspace / "waymo_open" / "training" / "camera_image").iterdir()).stem
    assert lines == [
        "fourds readout: error: perception_test/all_valid.json: no Perception Test annotation "
        "file (all_train.json or all_valid.json, in train_annotations.zip or "
        "valid_annotations.zip; Perception Test: annotations and videos from "
        "github.com/google-deepmind/perception_test, under CC BY 4.0)\n",
        f"fourds readout: error: waymo_open/training/camera_box/{segment}.parquet: no "
        f"camera_box file for segment {segment} (Waymo Open Dataset v2 from waymo.com/open, "
        "under the Waymo Dataset License Agreement for Non-Commercial Use "
        "(waymo.com/open/terms))\n",
    ]
