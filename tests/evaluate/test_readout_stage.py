"""The readout stage end to end on a tiny encoder: every task, both regimes, cached features."""

from __future__ import annotations

import json

import pytest
import yaml

from fourds.cli import main
from fourds.config import CurateConfig, ModelConfig
from fourds.data.curate import curate
from fourds.models.mae import MaskedAutoencoder
from fourds.models.vit import VideoViT
from fourds.models.weights import save_mae
from tests.conftest import tiny_mae_config
from tests.train.conftest import write_tiny_params

TASKS = ("depth", "pose", "tracking", "boxes", "classification")


@pytest.fixture(scope="module")
def setup(tiny_corpus, tmp_path_factory):
    """(shards, pretrained dir) for a tiny untrained encoder on 4-frame 16x16 clips."""
    root = tmp_path_factory.mktemp("readout")
    curate(tiny_corpus, root, CurateConfig(4, 2, 16, 8, 0.0, "center"))
    cfg = ModelConfig(32, 2, 2, 64, (2, 8, 8), qk_norm=True, parallel_blocks=False, bias=True)
    mae = tiny_mae_config(mask_ratio=0.5)
    model = MaskedAutoencoder(VideoViT(cfg, 4, 16), mae)
    (root / "pretrained").mkdir()
    save_mae(root / "pretrained" / "checkpoint.pt", model.state_dict(), cfg, mae, 4, 16)
    return root / "shards", root / "pretrained"


def run_readout(setup, tmp_path, task: str, **readout) -> dict:
    shards, pretrained = setup
    tmp_path.mkdir(parents=True, exist_ok=True)
    params = write_tiny_params(tmp_path / "params.yaml")
    raw = yaml.safe_load(params.read_text())
    raw["readout"].update(readout)
    for settings in raw["readouts"].values():
        settings.update(steps=6, batch_size=2, width=16, heads=2)
    params.write_text(yaml.safe_dump(raw))
    out = tmp_path / f"{task}-{readout.get('regime', 'frozen')}"
    command = ["readout", "--params", str(params), "--scale", "tiny", "--task", task]
    command += ["--curated", str(shards), "--pretrained", str(pretrained), "--out", str(out)]
    assert main(command) == 0
    return json.loads((out / "metrics.json").read_text()) | {"out": out}


@pytest.mark.parametrize("task", TASKS)
def test_every_task_writes_metrics_and_examples(setup, tmp_path, task):
    metrics = run_readout(setup, tmp_path, task)
    assert metrics["task"] == task and metrics["regime"] == "frozen"
    assert isinstance(metrics[metrics["headline"]], float)
    assert list((metrics["out"] / "examples").glob("*.png"))
    assert (metrics["out"] / "run.yaml").is_file()


def test_cached_features_give_the_same_readout(setup, tmp_path):
    cached = run_readout(setup, tmp_path / "a", "pose", cache_features=True)
    fresh = run_readout(setup, tmp_path / "b", "pose", cache_features=False)
    for key in ("rotation_error", "end_point_error", "final_train_loss"):
        assert cached[key] == pytest.approx(fresh[key], rel=1e-4), key


def test_fine_tuning_trains_the_encoder_too(setup, tmp_path):
    frozen = run_readout(setup, tmp_path / "a", "pose", cache_features=False)
    tuned = run_readout(
        setup, tmp_path / "b", "pose", regime="finetuned", cache_features=False,
        finetune_lr_scale=1.0,
    )  # fmt: skip
    assert tuned["regime"] == "finetuned"
    assert tuned["final_train_loss"] != frozen["final_train_loss"]
