"""A benchmark format is one entry of fourds.config.formats.FORMATS and its reader module: a
toy format (tests/data/toy_format.py) added there is refused by params before and accepted
after, only for the tasks it names, and the readout stage reads, trains on and records it (and
scores it as its challenge does, where the entry names a challenge module)."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import yaml

from fourds.config import ConfigError, Params
from fourds.config.formats import FORMATS, SourceFormat
from fourds.config.load import check_readout_params
from fourds.config.schema import parse
from fourds.data.benchmarks import iter_benchmark
from tests.conftest import REPO_ROOT
from tests.data import toy_format
from tests.evaluate.test_readout_stage import run_readout, setup  # noqa: F401 (tiny encoder)

TOY = SourceFormat("tests.data.toy_format", ("depth",), "toy files that a test writes")


@pytest.fixture
def toy(monkeypatch) -> SourceFormat:
    """The toy format's entry, in the table for one test."""
    monkeypatch.setitem(FORMATS, "toy", TOY)
    return TOY


def with_toy_source(task: str) -> dict:
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw = copy.deepcopy(raw)
    raw["readouts"][task]["source"].update(format="toy", train="train.npz", test="test.npz")
    return raw


def test_params_take_the_toy_format_once_it_has_an_entry_and_only_for_its_tasks(monkeypatch):
    with pytest.raises(ConfigError, match="readouts.depth.source.format='toy' is not one of"):
        parse(Params, with_toy_source("depth"))
    monkeypatch.setitem(FORMATS, "toy", TOY)
    params = parse(Params, with_toy_source("depth"))
    check_readout_params(params.readouts)
    params = parse(Params, with_toy_source("tracking"))
    with pytest.raises(ConfigError, match=r"has no tracking ground truth \(it serves \['depth'\]"):
        check_readout_params(params.readouts)


def toy_source(folder) -> dict:
    """readouts.depth.source for a toy train split of 3 videos and a test split of 2."""
    train = toy_format.write_split(folder / "train.npz", videos=3, frames=8, size=24, seed=0)
    test = toy_format.write_split(folder / "test.npz", videos=2, frames=4, size=24, seed=1)
    return {"format": "toy", "train": str(train), "test": str(test), "frame_stride": 1,
            "videos": ""}  # fmt: skip


def test_the_readout_stage_reads_the_toy_format(toy, setup, tmp_path):  # noqa: F811
    source = toy_source(tmp_path)
    metrics = run_readout(setup, tmp_path / "stage", "depth", settings={"source": source})
    assert metrics["source"] == "toy"
    assert (metrics["train_clips"], metrics["test_clips"]) == (6, 2)  # 8 frames: two 4-frame clips
    assert isinstance(metrics["abs_rel"], float)
    assert toy_format.CHALLENGE not in metrics  # no challenge module in the entry
    run = yaml.safe_load((metrics["out"] / "run.yaml").read_text())
    assert source["train"] in yaml.safe_dump(run) and source["test"] in yaml.safe_dump(run)


def test_the_entrys_challenge_module_also_scores_the_test_split(monkeypatch, setup, tmp_path):  # noqa: F811
    monkeypatch.setitem(FORMATS, "toy", dataclasses.replace(TOY, challenge="tests.data.toy_format"))
    settings = {"source": toy_source(tmp_path)}
    metrics = run_readout(setup, tmp_path / "stage", "depth", settings=settings)
    assert metrics[toy_format.CHALLENGE] == 2.0  # the two test clips
    assert isinstance(metrics["abs_rel"], float)  # fourds' own numbers beside it


def test_a_missing_toy_file_says_where_to_get_it(toy, tmp_path):
    missing = tmp_path / "no.npz"
    with pytest.raises(FileNotFoundError, match="no such toy benchmark .*; get toy files that"):
        iter_benchmark("toy", missing, 16)
