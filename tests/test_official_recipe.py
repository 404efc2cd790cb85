"""The README's "Official 4DS checkpoints" recipe, run as written: on an `.npz` in the released
layout (a small randomly initialised model: the converter reads the architecture and clip shape
from the arrays, so the commands stay those for 4DS-B) and a ScanNet-style benchmark in its
published layout, in a fresh folder."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

import fourds
from fourds import layout
from tests.benchmark_files import export_benchmark
from tests.conftest import REPO_ROOT, describe_model, doc_commands, sh
from tests.models.test_convert import OFFICIAL_SMALL, full_arrays, write_npz

SECTION = "Official 4DS checkpoints"


def named(commands: list[str], pattern: str) -> str:
    """The one value `pattern` (a regex with one group) finds in the commands."""
    (value,) = re.findall(pattern, "\n".join(commands))
    return value


@pytest.mark.slow
def test_the_official_checkpoint_recipe_runs_as_written(tiny_corpus, tmp_path, monkeypatch):
    commands = doc_commands(SECTION)
    shutil.copytree(REPO_ROOT / "experiments", tmp_path / "experiments")
    describe_model(tmp_path / "experiments", "4ds_b", OFFICIAL_SMALL)
    write_npz(tmp_path / named(commands, r"--npz (\S+)"), full_arrays())
    for split, key in (("readout-train", "train"), ("readout-test", "test")):
        scenes = export_benchmark(tiny_corpus, split, "scannet", tmp_path / "export")
        destination = tmp_path / named(commands, rf"readouts\.depth\.source\.{key}=(\S+)")
        destination.parent.mkdir(parents=True, exist_ok=True)
        scenes.rename(destination)
    # the `fourds` command runs the package under test
    monkeypatch.setenv("PYTHONPATH", str(Path(fourds.__file__).parents[1]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for command in commands:
        sh("bash", "-c", command, cwd=tmp_path)

    composed = tmp_path / named(commands, r"fourds params .*--out (\S+)")
    params = yaml.safe_load(composed.read_text())
    assert params["ladder"]["name"] == "4ds" and params["readout"]["regimes"] == ["frozen"]
    assert (params["curate"]["clip_frames"], params["curate"]["resolution"]) == (16, 224)
    out = tmp_path / named(commands, r"fourds readout .*--out (\S+)")
    task = named(commands, r"fourds readout .*--task (\S+)")
    metrics = json.loads(layout.ReadoutFiles.inside(out, task).metrics.read_text())
    assert metrics["readout"] == params["readouts"]["depth"]["pretrained"]
    assert (metrics["source"], metrics["regime"], metrics["test_clips"]) == ("scannet", "frozen", 3)
    assert isinstance(metrics["abs_rel"], float) and "final_train_loss" not in metrics
