"""The task table's rules on params: known tasks, formats that carry their ground truth, and
converted readouts only where the table says one loads."""

from __future__ import annotations

import importlib

import pytest
import yaml

from fourds.config import ConfigError, Params
from fourds.config.formats import FORMATS
from fourds.config.load import check_readout_params, checked
from fourds.config.schema import parse
from fourds.config.tasks import TASKS
from tests.conftest import REPO_ROOT


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


def check_fails(raw: dict, message: str) -> None:
    """Loading `raw` (the schema's checks, then the task table's) fails with `message`."""
    with pytest.raises(ConfigError) as error:
        checked(raw)
    assert str(error.value) == message


def test_the_committed_params_pass_and_every_task_reads_keys_of_the_shards():
    from fourds.data.shards import GROUND_TRUTH_KEYS, OPTIONAL_PER_CLIP
    from fourds.report.glance import EMBEDDED_TASKS

    params = parse(Params, yaml.safe_load((REPO_ROOT / "params.yaml").read_text()))
    check_readout_params(params.readouts)
    assert tuple(params.readout.tasks) == EMBEDDED_TASKS
    for spec in TASKS.values():
        assert set(spec.keys) <= {*GROUND_TRUTH_KEYS, *OPTIONAL_PER_CLIP}
        assert spec.needs or not set(spec.keys) & set(OPTIONAL_PER_CLIP)  # says what has them


def test_an_unknown_task_is_refused(raw):
    raw["readout"]["tasks"] = ["depth", "flow"]
    raw["readouts"]["flow"] = raw["readouts"]["depth"]
    known = "['depth', 'pose', 'tracking', 'boxes', 'classification', 'appearance']"
    check_fails(raw, f"readouts has 'flow', which is not one of {known}")


@pytest.mark.parametrize(
    ("task", "source", "message"),
    [
        (
            "depth",
            {"format": "tapvid", "train": "a.pkl", "test": "b.pkl"},
            "readouts.depth.source.format='tapvid' has no depth ground truth "
            "(it serves ['tracking'])",
        ),
        (
            "pose",
            {"format": "kinetics", "train": "a.csv", "test": "b.csv", "videos": "k400"},
            "readouts.pose.source.format='kinetics' has no pose ground truth "
            "(it serves ['classification'])",
        ),
    ],
)
def test_a_readout_source_must_carry_its_tasks_ground_truth(raw, task, source, message):
    raw["readouts"][task]["source"].update(source)
    check_fails(raw, message)


def test_an_unknown_format_is_refused_where_params_load(raw):
    raw["readouts"]["boxes"]["source"].update({"format": "kitti", "train": "a", "test": "b"})
    with pytest.raises(ConfigError) as error:
        parse(Params, raw)
    assert str(error.value) == (
        "readouts.boxes.source.format='kitti' is not one of ['synthetic', 'scannet', "
        "'realestate10k', 'tapvid', 'perception_test', 'box_tracks', 'waymo_open', 'ssv2', "
        "'kinetics']"
    )


def test_only_the_depth_readout_loads_a_converted_readout(raw):
    raw["readout"]["regimes"] = ["frozen"]
    raw["readouts"]["pose"]["pretrained"] = "w-readout.pt"
    check_fails(
        raw,
        "readouts.pose.pretrained='w-readout.pt': only the ['depth'] readouts can be loaded "
        "from `fourds convert` output",
    )


def test_every_format_serves_tasks_of_the_table():
    assert all(entry.tasks and set(entry.tasks) <= set(TASKS) for entry in FORMATS.values())


def test_every_table_entry_names_a_module_that_exports_what_its_kind_needs():
    """The task and format tables name their modules as strings, which no import follows: each
    imports and exports what fourds calls on it (fourds.config.tasks, fourds.config.formats)."""
    for name, entry in TASKS.items():
        assert callable(getattr(importlib.import_module(entry.module), "build", None)), name
    for name, entry in FORMATS.items():
        reader = importlib.import_module(entry.reader)
        needs = ("class_file", "classes", "split") if entry.lists_videos else ("samples", "files")
        assert all(callable(getattr(reader, each, None)) for each in needs), (name, needs)
        assert not entry.lists_videos or isinstance(reader.VIDEO_SUFFIX, str | tuple), name
        if entry.challenge:
            challenge = importlib.import_module(entry.challenge)
            assert callable(getattr(challenge, "challenge_task", None)), name
