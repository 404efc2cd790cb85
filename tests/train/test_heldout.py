"""The held-out curve: fixed clips and masks, the same for every scale and seed, measured at
fixed steps without changing what the run trains."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest
import torch

from fourds.config import load_params
from fourds.models.factory import scale_mae
from fourds.train.heldout import heldout_clips
from tests.train.conftest import CLI, run_pretrain, world_pretraining, write_tiny_params
from tests.train.test_resume import weights


def heldout_rows(run_dir) -> list[dict[str, str]]:
    with open(run_dir / "heldout.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_curve_is_measured_at_its_steps_and_leaves_the_weights_as_without_it(
    tiny_shards, tmp_path
):
    """Every 4 of 10 steps, and after the last (not a multiple)."""
    measured = write_tiny_params(tmp_path / "measured.yaml", steps=10, heldout_every=4)
    unmeasured = write_tiny_params(tmp_path / "unmeasured.yaml", steps=10, heldout_clips=0)
    run_pretrain(CLI, measured, tiny_shards, tmp_path / "measured")
    run_pretrain(CLI, unmeasured, tiny_shards, tmp_path / "unmeasured")

    with_curve, without = weights(tmp_path / "measured"), weights(tmp_path / "unmeasured")
    for name, tensor in without.items():
        assert torch.equal(with_curve[name], tensor), name

    rows = heldout_rows(tmp_path / "measured")
    assert [int(row["step"]) for row in rows] == [0, 4, 8, 10]
    metrics = json.loads((tmp_path / "measured" / "metrics.json").read_text())
    flops_per_step = metrics["pretrain_flops"] / metrics["steps"]
    assert [int(row["train_flops"]) for row in rows] == [
        0,
        4 * flops_per_step,
        8 * flops_per_step,
        metrics["pretrain_flops"],
    ]
    assert metrics["heldout_loss"] == pytest.approx(float(rows[-1]["heldout_loss"]))
    assert float(rows[-1]["heldout_loss"]) < float(rows[0]["heldout_loss"])  # it learned
    assert heldout_rows(tmp_path / "unmeasured") == []
    unmeasured_metrics = json.loads((tmp_path / "unmeasured" / "metrics.json").read_text())
    assert "heldout_loss" not in unmeasured_metrics


@pytest.mark.parametrize("source", ["shards", "world"])
def test_every_scale_and_seed_is_measured_on_the_same_clips_and_masks(
    tiny_shards, tmp_path, source
):
    path = write_tiny_params(tmp_path / "params.yaml", source=source, crop_scale=[1.0, 1.0])
    params = load_params(path)
    small = params.pretraining("tiny")
    wide = dataclasses.replace(
        small,
        model=dataclasses.replace(small.model, width=64, heads=4),
        pretrain=dataclasses.replace(small.pretrain, seed=7),
    )
    sets = [
        heldout_clips(spec, tiny_shards, scale_mae(spec).sample_masks, "cpu")
        for spec in (small, wide)
    ]
    for field in ("video", "keep_index", "mask"):
        assert torch.equal(getattr(sets[0], field), getattr(sets[1], field)), field
    assert sets[0].video.dtype == torch.uint8 and sets[0].video.shape[1:] == (4, 16, 16, 3)


def test_world_clips_are_drawn_at_the_runs_complexity(tiny_shards, tmp_path):
    videos = {}
    for level in ("simple", "rich"):
        spec = world_pretraining(tmp_path, level)
        videos[level] = heldout_clips(spec, tiny_shards, scale_mae(spec).sample_masks, "cpu").video
    assert not torch.equal(videos["simple"], videos["rich"])


def test_an_unknown_complexity_is_refused_naming_the_levels(tmp_path):
    from fourds.config import ConfigError

    path = write_tiny_params(tmp_path / "params.yaml", world_complexity="hard")
    with pytest.raises(
        ConfigError, match="pretrain.world_complexity='hard'.*simple.*standard.*rich"
    ):
        load_params(path)
