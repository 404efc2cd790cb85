"""Adding a task is one entry in the task table (fourds.config.tasks.TASKS) and the module that
implements it, with a section of options and a head of its own where it has them: a toy task
(tests/evaluate/toy_task.py) added so is checked in params (its options too), run by the
readout stage with its options and head, answered by `fourds answer` (the report's grid) and
tabled in the README's results at a glance."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import yaml

from fourds import layout
from fourds.cli import main
from fourds.config import ConfigError
from fourds.config.load import checked
from fourds.config.tasks import TASKS, TaskEntry
from fourds.evaluate import readout as readout_module
from fourds.report.glance import EMBEDDED_TASKS, Study, front_page, header, rows
from tests.conftest import REPO_ROOT
from tests.evaluate import toy_task
from tests.evaluate.test_readout_stage import setup  # noqa: F401 (the tiny encoder and shards)
from tests.train.conftest import write_tiny_params

TOY = TaskEntry(
    headline="abs_error",
    label="toy brightness error",
    higher_is_better=False,
    baseline="mean training brightness",
    keys=(),
    module="tests.evaluate.toy_task",
    options=toy_task.BrightnessOptions,
)
GAIN = 0.5


@pytest.fixture
def toy(monkeypatch) -> TaskEntry:
    """The toy task's entry, in the table for one test, and its head in the readout's."""
    monkeypatch.setitem(TASKS, "brightness", TOY)
    monkeypatch.setitem(readout_module.HEADS, "mean_pool", toy_task.mean_pool_head)
    return TOY


def with_toy(raw: dict) -> dict:
    """Params with the toy task added to readout.tasks, its size and schedule depth's, its
    options its own."""
    raw = copy.deepcopy(raw)
    raw["readout"]["tasks"] = [*raw["readout"]["tasks"], "brightness"]
    raw["readouts"]["brightness"] = copy.deepcopy(raw["readouts"]["depth"])
    raw["readouts"]["brightness"]["options"] = {"gain": GAIN}
    return raw


def recording(cls: type, built: list) -> type:
    """`cls`, whose instances are also appended to `built`."""

    class Recorded(cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    Recorded.__name__ = cls.__name__
    return Recorded


def run_toy_readout(setup, folder: Path, regime: str = "frozen") -> Path:  # noqa: F811
    """The readout stage on the toy task, through the CLI, on the tiny encoder: its folder."""
    shards, pretrained = setup
    folder.mkdir(parents=True, exist_ok=True)
    params = write_tiny_params(folder / "params.yaml")
    raw = with_toy(yaml.safe_load(params.read_text()))
    for each in raw["readouts"].values():
        each.update(steps=6, batch_size=2, width=16, heads=2)
    params.write_text(yaml.safe_dump(raw))
    out = folder / f"brightness-{regime}"
    command = ["readout", "--params", str(params), "--scale", "tiny", "--task", "brightness"]
    command += ["--regime", regime, "--curated", str(shards), "--pretrained", str(pretrained)]
    assert main([*command, "--out", str(out)]) == 0
    return out


def test_params_name_the_toy_task_only_once_it_has_an_entry(monkeypatch):
    raw = with_toy(yaml.safe_load((REPO_ROOT / "params.yaml").read_text()))
    with pytest.raises(ConfigError, match="readouts has 'brightness', which is not one of"):
        checked(raw)
    monkeypatch.setitem(TASKS, "brightness", TOY)
    del raw["readouts"]["brightness"]["options"]["gain"]
    with pytest.raises(ConfigError, match=r"readouts.brightness.options is missing key\(s\)"):
        checked(raw)
    raw["readouts"]["brightness"]["options"]["gain"] = GAIN
    assert checked(raw).readouts["brightness"].options == toy_task.BrightnessOptions(GAIN)


def test_the_readout_stage_trains_and_scores_the_toy_task(toy, setup, tmp_path, monkeypatch):  # noqa: F811
    built = []
    monkeypatch.setattr(toy_task, "MeanPoolHead", recording(toy_task.MeanPoolHead, built))
    monkeypatch.setattr(toy_task, "BrightnessTask", recording(toy_task.BrightnessTask, built))
    out = run_toy_readout(setup, tmp_path)
    assert {type(each).__name__ for each in built} == {"MeanPoolHead", "BrightnessTask"}
    assert {each.gain for each in built if hasattr(each, "gain")} == {GAIN}
    files = layout.ReadoutFiles.inside(out, "brightness")
    metrics = json.loads(files.metrics.read_text())
    assert (metrics["task"], metrics["headline"]) == ("brightness", toy.headline)
    assert 0 <= metrics["abs_error"] < 1 and "abs_error" in metrics["baseline"]
    header = files.clips.read_text().splitlines()[0].split(",")
    assert {"abs_error", "baseline_abs_error", "weight"} <= set(header)


def test_the_answer_and_the_readme_table_show_the_toy_task(toy, setup, tmp_path, capsys):  # noqa: F811
    """The default study's pinned results, with the toy task's stage output standing in for its
    readouts at both scales and regimes."""
    stage = run_toy_readout(setup, tmp_path / "stage")
    runs = tmp_path / "runs"
    for path in (REPO_ROOT / "runs").rglob("*"):
        if path.suffix in (".json", ".csv"):  # the pinned results git keeps
            (runs / path.parent.relative_to(REPO_ROOT / "runs")).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, runs / path.relative_to(REPO_ROOT / "runs"))
    raw = with_toy(yaml.safe_load((REPO_ROOT / "params.yaml").read_text()))
    scales = raw["ladder"]["scales"]
    for scale in scales:
        for regime in raw["readout"]["regimes"]:
            toy_files = layout.ReadoutFiles.inside(stage, "brightness")
            files = layout.ReadoutFiles.of(scale, "brightness", regime).at(runs)
            for made, place in ((toy_files.metrics, files.metrics), (toy_files.clips, files.clips)):
                place.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(made, place)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    assert main(["answer", "--params", str(params), "--runs", str(runs)]) == 0
    answer = capsys.readouterr().out
    assert f"{toy.title}; no-learning baseline ({toy.baseline})" in answer
    study = Study("toy", Path("runs"), tuple(scales), tasks=(*EMBEDDED_TASKS, "brightness"))
    table = rows(study, front_page(study, tmp_path))
    assert [row[0] for row in table] == [TASKS[task].title for task in study.tasks]
    assert table[-1][0] == toy.title and len(table[-1]) == len(header(study))
