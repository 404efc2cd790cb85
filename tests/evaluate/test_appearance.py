"""The appearance readout: the kind of each clip's most visible body, on a catalog world's
corpus, scored against the most frequent kind; a corpus without kinds is one line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fourds.config import CurateConfig, ModelConfig
from fourds.data.corpus import write_corpus
from fourds.data.curate import curate
from fourds.data.shards import load_split
from fourds.evaluate.tasks.appearance import APPEARANCE_KINDS, OTHER, AppearanceTask, visible_kinds
from fourds.models.mae import MaskedAutoencoder
from fourds.models.vit import VideoViT
from fourds.models.weights import save_mae
from tests.conftest import TINY_WORLD, one_error_line, tiny_mae_config
from tests.evaluate.test_readout_stage import run_readout


def test_the_most_visible_body_names_the_clip_and_an_empty_view_none():
    instances = np.zeros((3, 2, 2, 2), np.uint8)
    instances[0, :, 0, :] = 2  # slot 1 covers 4 pixels, slot 0 two
    instances[0, 0, 1, :] = 1
    instances[1, 0, 0, 0] = 1  # a tie: the lower slot
    instances[1, 0, 0, 1] = 3
    body_kind = np.array([[7, 40, -1], [3, 5, 9], [1, 2, -1]], np.int16)
    assert visible_kinds(instances, body_kind).tolist() == [40, 3, -1]


def test_kinds_past_the_commonest_and_empty_views_are_other():
    task = AppearanceTask()
    assert task.class_names[-1] == OTHER and task.out_dim == APPEARANCE_KINDS + 1
    instances = np.ones((3, 1, 2, 2), np.uint8)
    instances[2] = 0
    body_kind = np.array([[0], [APPEARANCE_KINDS], [5]], np.int16)
    labels = task.targets({"instances": instances, "body_kind": body_kind})["label"]
    assert labels.tolist() == [0, APPEARANCE_KINDS, APPEARANCE_KINDS]


def tiny_study(root, corpus):
    """(shards, pretrained dir) of a tiny untrained encoder on `corpus`, curated under `root`."""
    curate(corpus, root, CurateConfig(4, 2, 12, 16, 8, 0.0, "center"))
    cfg = ModelConfig(32, 2, 2, 64, (2, 8, 8), qk_norm=True, parallel_blocks=False, bias=True)
    mae = tiny_mae_config(mask_ratio=0.5)
    (root / "pretrained").mkdir()
    model = MaskedAutoencoder(VideoViT(cfg, 4, 16), mae)
    save_mae(root / "pretrained" / "checkpoint.pt", model.state_dict(), cfg, mae, 4, 16)
    return root / "shards", root / "pretrained"


@pytest.fixture(scope="module")
def catalog_setup(tmp_path_factory):
    """A tiny study on a small corpus of the catalog world."""
    corpus = tmp_path_factory.mktemp("catalog-corpus")
    spec = dataclasses.replace(
        TINY_WORLD,
        videos={"pretrain": 2, "readout-train": 6, "readout-test": 4},
        complexity="catalog-1k",
    )
    write_corpus(corpus, spec)
    return tiny_study(tmp_path_factory.mktemp("appearance"), corpus)


def test_the_appearance_readout_scores_kinds_against_the_most_frequent(catalog_setup, tmp_path):
    shards, _ = catalog_setup
    metrics = run_readout(catalog_setup, tmp_path, "appearance", tasks=["appearance"])
    assert metrics["task"] == "appearance" and metrics["headline"] == "top1"
    test = load_split(shards, "readout-test", ("instances", "body_kind"))
    labels = AppearanceTask().targets(test)["label"].numpy()
    assert metrics["test_clips"] == len(labels)
    counts = np.bincount(labels, minlength=APPEARANCE_KINDS + 1)
    assert 0 <= metrics["baseline"]["top1"] <= counts.max() / len(labels)
    assert (metrics["out"] / "examples" / "appearance.png").is_file()


def test_a_corpus_without_kinds_is_one_line_saying_what_has_them(tiny_corpus, tmp_path, capsys):
    continuous = tiny_study(tmp_path / "continuous", tiny_corpus)
    with pytest.raises(AssertionError):
        run_readout(continuous, tmp_path / "readout", "appearance", tasks=["appearance"])
    line = one_error_line(capsys.readouterr().err, "readout")
    assert "'body_kind'" in line and "catalog world's corpus" in line, line
    assert not (tmp_path / "readout" / "appearance-frozen" / "metrics").exists()
