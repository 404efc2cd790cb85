"""`fourds sweep` (fourds.pipeline.sweep): a grid of pretraining experiments through `dvc exp
run`, its file and figures, going on where an earlier sweep of the same name stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fourds.errors import ConfigError
from fourds.pipeline.sweep import earlier_points, grid_points, point_name, summary, sweep
from tests.conftest import copy_tracked_files, sh

CORPUS = "data-quick"
QUICK = [  # the smoke ladder for four steps on a corpus of 12 small videos
    "ladder=smoke",
    f"curate.data={CORPUS}",
    "pretrain.steps=4",
    "pretrain.warmup_steps=1",
    "pretrain.log_every=1",
    "pretrain.checkpoint_every=0",
    "pretrain.heldout_every=2",
    "pretrain.heldout_clips=4",
]


def test_the_grid_is_every_combination_in_its_keys_order_and_names_experiments_dvc_accepts():
    points = grid_points(["pretrain.lr=0.001,0.003", "pretrain.seed=0,1"])
    assert points[1] == (("pretrain.lr", "0.001"), ("pretrain.seed", "1")) and len(points) == 4
    assert point_name("lr_sweep", points[1]) == "lr-sweep-lr-0p001-seed-1"
    for entry in ("pretrain.lr", "=0.1", "pretrain.lr=0.1,"):
        with pytest.raises(ConfigError, match="key=value"):
            grid_points([entry])


def ran(*losses: float, lr: str, seed: str) -> dict:
    scales = {f"s{i}": {"heldout_loss": loss} for i, loss in enumerate(losses)}
    return {
        "overrides": {"pretrain.lr": lr, "pretrain.seed": seed},
        "status": "ok",
        "scales": scales,
    }


def test_the_summary_reads_each_value_over_its_seeds_and_says_where_the_loss_falls():
    points = {
        "a": ran(0.5, 0.4, lr="0.001", seed="0"),
        "b": ran(0.5, 0.6, lr="0.001", seed="1"),
        "c": ran(0.3, 0.2, lr="0.003", seed="0"),
        "d": ran(0.3, 0.1, lr="0.003", seed="1"),
        "e": {"overrides": {"pretrain.lr": "0.01", "pretrain.seed": "0"}, "status": "failed"},
    }
    table = summary(points, ["s0", "s1"], "pretrain.lr")
    assert table["by_scale"]["s1"]["0.001"]["heldout_losses"] == [0.4, 0.6]
    assert table["by_scale"]["s1"]["0.003"]["spread"] == pytest.approx(0.1)
    assert table["by_scale"]["s0"]["0.01"] == {
        "heldout_losses": [], "failed": 1, "mean": None, "spread": None
    }  # fmt: skip
    assert table["best"] == {"s0": "0.003", "s1": "0.003"}
    falls = table["with_scale"]
    assert not falls["0.001"]["falls_on_every_point"] and falls["0.003"]["falls_on_every_point"]
    assert falls["0.003"]["margin"] == pytest.approx(0.5) and "0.01" not in falls


def test_a_file_that_is_no_sweep_s_is_refused_and_left_as_it_is(tmp_path):
    other = tmp_path / "notes.json"
    other.write_text('{"mine": 1}')
    with pytest.raises(ConfigError, match="not a sweep's file"):
        earlier_points(other)
    assert other.read_text() == '{"mine": 1}' and earlier_points(tmp_path / "new.json") == {}


@pytest.fixture(scope="module")
def tiny_repository(tmp_path_factory) -> Path:
    """This repository's tracked files but the default's lock and DVC remote, with a corpus of
    12 small videos (`dvc add`ed), committed."""
    repo = tmp_path_factory.mktemp("sweep")
    copy_tracked_files(repo, skip=("dvc.lock", "dvc-store"))
    sh("git", "init", "-q", cwd=repo)
    command = "fourds synth --out data-quick --size 32 --videos pretrain=4 readout-train=4 "
    sh("bash", "-c", command + "readout-test=4 && dvc add -q data-quick", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@invalid", "commit", "-qm", "x", cwd=repo)
    return repo


@pytest.mark.slow
def test_a_sweep_runs_the_points_not_yet_in_its_file_as_experiments(tiny_repository, tmp_path):
    """The 0.003 point is already in the file (an earlier, interrupted sweep): only 0.001 runs,
    through `dvc exp run`, and the file then holds both, with its figures."""
    out = tmp_path / "sweeps"
    out.mkdir()
    scales = {
        scale: {"heldout_loss": loss, "heldout_curve": [[0, 0.0, 1.0], [4, 1e6, loss]]}
        for scale, loss in (("smoke_s", 0.9), ("smoke_l", 0.8))
    }
    earlier = {"overrides": {"pretrain.lr": "0.003"}, "status": "ok", "scales": scales}
    name = point_name("quick", (("pretrain.lr", "0.003"),))
    (out / "quick.json").write_text(json.dumps({"results": {"points": {name: earlier}}}))

    path = sweep(tiny_repository, "quick", ["pretrain.lr=0.001,0.003"], QUICK, out)

    record = json.loads(path.read_text())
    points = record["results"]["points"]
    assert points[name] == earlier
    new = points[point_name("quick", (("pretrain.lr", "0.001"),))]
    assert new["status"] == "ok", new
    assert set(new["scales"]) == {"smoke_s", "smoke_l"}
    curve = new["scales"]["smoke_l"]["heldout_curve"]
    assert curve[-1][0] == 4 and all(row[2] > 0 for row in curve)
    assert record["config"]["scales"] == ["smoke_s", "smoke_l"] and record["machine"]["cpu"]
    assert set(record["results"]["by_scale"]["smoke_l"]) == {"0.001", "0.003"}
    assert (out / "quick.png").stat().st_size and (out / "quick_curves.png").stat().st_size
    listed = sh("dvc", "exp", "list", "--name-only", cwd=tiny_repository).split()
    assert listed == ["quick-lr-0p001"] and not sh(
        "git", "status", "--porcelain", cwd=tiny_repository
    )
