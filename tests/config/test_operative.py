"""Each stage's operative.gin: every param section it used, parsed back by gin."""

from __future__ import annotations

import dataclasses

import pytest

from fourds.config import load_params
from fourds.config.operative import load_operative, operative_config
from fourds.records import write_run_record
from tests.conftest import REPO_ROOT


@pytest.fixture
def params():
    return load_params(REPO_ROOT / "params.yaml")


def test_operative_config_lists_every_value_and_parses_back(params, tmp_path):
    depth = dataclasses.replace(params.readouts["depth"], lr=1e-8, pretrained="w-readout.pt")
    sections = {"models.cpu_s": params.models["cpu_s"], "readouts.depth": depth}
    text = operative_config(sections)
    assert "models_cpu_s/ModelConfig.tubelet = (2, 8, 8)" in text
    assert "readouts_depth/TaskReadoutConfig.pretrained = 'w-readout.pt'" in text
    assert "readouts_depth/SourceConfig.format = 'synthetic'" in text  # nested sections too
    (tmp_path / "operative.gin").write_text(text)
    assert load_operative(tmp_path / "operative.gin") == sections


def test_the_run_record_writes_operative_gin_beside_run_yaml(params, tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("")
    config = {"curate": params.curate, "runtime": params.runtime}
    write_run_record(tmp_path / "out", "curate", params_file, [], "cpu", config=config)
    assert (tmp_path / "out" / "run.yaml").is_file()
    assert load_operative(tmp_path / "out" / "operative.gin") == config


def test_a_file_not_written_by_fourds_is_refused(tmp_path):
    (tmp_path / "other.gin").write_text("train.steps = 3\n")
    with pytest.raises(ValueError, match="not an operative.gin written by fourds"):
        load_operative(tmp_path / "other.gin")
