"""fourds.layout names a study's stage folders and DVC stage names and reads them back; no
other module of the package, nor the report's notebook, spells them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fourds import layout
from tests.conftest import REPO_ROOT


def test_each_stage_has_its_dvc_name_and_folder_and_reads_back_from_both():
    stages = [
        layout.curate(),
        layout.pretrain("cpu_s"),
        layout.fidelity("cpu_l"),
        layout.readout("cpu_l", "frozen"),
        layout.Stage(layout.READOUT, "cpu_l", "depth", "frozen"),  # a study of one task a stage
    ]
    names = ["curate", "pretrain@cpu_s", "fidelity@cpu_l", "readout@cpu_l-frozen",
             "readout@cpu_l-depth-frozen"]  # fmt: skip
    folders = ["curate", "pretrain/cpu_s", "fidelity/cpu_l", "readout/cpu_l-frozen",
               "readout/cpu_l-depth-frozen"]  # fmt: skip
    for stage, name, folder in zip(stages, names, folders, strict=True):
        assert (stage.name, stage.folder) == (name, Path(folder))
        assert layout.Stage.named(name) == stage == layout.stage_at(folder)
        assert layout.stage_at(Path(folder) / "metrics.json") == stage
    assert layout.readouts(["s", "l"], ["frozen"]) == [
        layout.readout("s", "frozen"),
        layout.readout("l", "frozen"),
    ]
    assert [layout.scale_of(name) for name in (*names, "report")] == [
        None, "cpu_s", "cpu_l", "cpu_l", "cpu_l", None,
    ]  # fmt: skip


def test_a_tasks_files_are_found_in_either_layout_and_read_back(tmp_path):
    together = layout.ReadoutFiles.of("cpu_l", "depth", "frozen")
    alone = layout.ReadoutFiles.one_task_a_stage("cpu_l", "depth", "frozen")
    assert together == layout.ReadoutFiles(
        Path("readout/cpu_l-frozen/metrics/depth.json"),
        Path("readout/cpu_l-frozen/clips/depth.csv"),
        Path("readout/cpu_l-frozen/examples"),
    )
    assert (alone.metrics, alone.clips) == (
        Path("readout/cpu_l-depth-frozen/metrics.json"),
        Path("readout/cpu_l-depth-frozen/clips.csv"),
    )
    for files, stage in ((together, "readout@cpu_l-frozen"), (alone, "readout@cpu_l-depth-frozen")):
        for path in (files.metrics, files.clips):
            found, task = layout.readout_result(path)
            assert (found.name, task) == (stage, "depth")
    for path in ("readout/cpu_l-frozen/run.yaml", "readout/cpu_l-frozen/examples/depth.png",
                 "readout/cpu_l-depth-frozen/run.yaml", "pretrain/cpu_l/metrics.json"):  # fmt: skip
        assert layout.readout_result(path) is None, path
    # a study holds one layout or the other; where it holds neither, the files to be written
    assert layout.ReadoutFiles.in_study(tmp_path, "cpu_l", "depth", "frozen") == together.at(
        tmp_path
    )
    (tmp_path / alone.metrics).parent.mkdir(parents=True)
    (tmp_path / alone.metrics).write_text("{}")
    assert layout.ReadoutFiles.in_study(tmp_path, "cpu_l", "depth", "frozen") == alone.at(tmp_path)


@pytest.mark.parametrize("name", ["readout@cpu_l", "report@x", "pretrain", "curate@x"])
def test_a_name_that_is_no_stage_of_a_study_is_refused(name):
    with pytest.raises(ValueError, match="not a"):
        layout.Stage.named(name)


def test_a_path_outside_every_stage_folder_is_no_stages():
    for path in ("report/scaling.html", "readout/cpu_l", "readout", ""):
        assert layout.stage_at(path) is None, path


SPELLINGS = re.compile(
    r'/\s*"(?:curate|pretrain|fidelity|readout)"'  # a stage folder joined by hand
    r'|f"(?:pretrain|fidelity|readout)[@/]\{'  # a stage name or folder formatted by hand
    r"|\{[a-z_.]*scale\}-\{"  # a readout's <scale>-<regime> formatted
)


def test_no_other_module_spells_a_stage_folder_or_name():
    sources = [path for path in (REPO_ROOT / "src/fourds").rglob("*.py")]
    sources += [REPO_ROOT / "reports/scaling.ipynb"]
    found = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
        for path in sources
        if path.name != "layout.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SPELLINGS.search(line)
    ]
    assert not found, "spelled outside fourds.layout:\n" + "\n".join(found)
