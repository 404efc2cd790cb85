"""Each stage's operative.gin: what gin recorded the stage constructing, defaults included."""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys

import gin
import pytest
import torch
import yaml

from fourds.config import load_params
from fourds.config.operative import (
    HEADER,
    configured,
    load_operative,
    operative_config,
    stage,
)
from fourds.models.factory import build_mae, initial_mae, scale_mae
from fourds.models.init import initialise
from fourds.records import write_run_record
from fourds.train.optim import adamw
from tests.conftest import REPO_ROOT

PARAMS = REPO_ROOT / "params.yaml"
# A stage in miniature: the pretrain stage's MAE (on the meta device) and optimizer, built from
# params.yaml, and its run record. argv: out folder.
STAGE_SCRIPT = f"""
import sys
import torch
from fourds.config import load_params
from fourds.config.operative import configured, stage
from fourds.models.factory import scale_mae
from fourds.records import write_run_record
from fourds.train.optim import adamw

@stage
def run(out_dir, params_path):
    params = load_params(params_path)
    with torch.device("meta"):
        model = scale_mae(params.pretraining("cpu_s"))
    settings = {{"weight_decay": params.pretrain.weight_decay, "lr": params.pretrain.lr}}
    configured(adamw, settings, model, device=torch.device("cpu"))
    write_run_record(out_dir, "pretrain@cpu_s", params_path, [], "cpu")

run(sys.argv[1], {str(PARAMS)!r})
"""


@pytest.fixture
def params():
    return load_params(PARAMS)


def run_stage_script(source_root, out):
    """STAGE_SCRIPT in a fresh process that imports fourds from `source_root`."""
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(source_root), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", STAGE_SCRIPT, str(out)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    return (out / "operative.gin").read_text(), yaml.safe_load((out / "run.yaml").read_text())


def test_a_stage_records_the_params_values_and_the_code_defaults_it_built_with(params, tmp_path):
    @stage
    def run(out_dir, params_path):
        with torch.device("meta"):
            model = scale_mae(params.pretraining("cpu_s"))
        configured(adamw, {"weight_decay": 0.05, "lr": 1e-3}, model, device=torch.device("cpu"))
        write_run_record(out_dir, "pretrain@cpu_s", params_path, [], "cpu")

    run(tmp_path, PARAMS)
    assert (tmp_path / "run.yaml").is_file()
    bindings = load_operative(tmp_path / "operative.gin")
    model = params.models["cpu_s"]
    # from params
    assert bindings["VideoViT"]["frames"] == params.curate.clip_frames
    assert bindings["VideoViT"]["cfg"] == "@VideoViT/fourds.ModelConfig()"
    assert bindings["VideoViT/ModelConfig"]["width"] == model.width
    assert bindings["VideoViT/ModelConfig"]["tubelet"] == model.tubelet
    assert bindings["MaskedAutoencoder/MAEConfig"]["mask_ratio"] == params.mae.mask_ratio
    assert bindings["adamw"]["weight_decay"] == 0.05
    # the code's defaults, which params.yaml does not hold
    assert bindings["VideoViT"]["convention"] == "fourds"
    assert bindings["MAEDecoder"] == {"mlp_ratio": 4}
    assert bindings["adamw"]["betas"] == (0.9, 0.95)
    assert gin.config_str() == ""  # the stage leaves gin empty


def test_a_changed_code_default_changes_operative_gin_and_not_params(tmp_path):
    """The same stage from a copy of fourds whose AdamW betas default differs."""
    changed = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO_ROOT / "src" / "fourds", changed / "fourds", ignore=ignore)
    optim = changed / "fourds" / "train" / "optim.py"
    source = optim.read_text()
    assert source.count("betas: tuple[float, float] = (0.9, 0.95)") == 1
    optim.write_text(source.replace("= (0.9, 0.95)", "= (0.9, 0.98)"))
    before, record = run_stage_script(REPO_ROOT / "src", tmp_path / "original")
    after, changed_record = run_stage_script(changed, tmp_path / "changed")
    assert changed_record["params_sha256"] == record["params_sha256"]
    diff = difflib.ndiff(before.splitlines(), after.splitlines())
    assert [line for line in diff if line[:2] in ("- ", "+ ")] == [
        "- adamw.betas = (0.9, 0.95)",
        "+ adamw.betas = (0.9, 0.98)",
    ]
    assert load_operative(tmp_path / "changed" / "operative.gin")["adamw"]["betas"] == (0.9, 0.98)


def test_outside_a_stage_the_values_are_passed_and_gin_is_left_alone(params):
    gin.clear_config()
    model = torch.nn.Linear(2, 2)
    optimizer = configured(
        adamw, {"weight_decay": 0.5, "lr": 0.1}, model, device=torch.device("cpu")
    )
    assert optimizer.param_groups[0]["weight_decay"] == 0.5
    assert gin.config_str() == ""
    assert operative_config() == HEADER


def test_a_stage_draws_the_initial_weights_of_the_explicit_constructor(params, tmp_path):
    """Through gin or not, the MAE is built with the same arguments in the same order."""
    in_stage = stage(lambda out_dir, params_path: initial_mae(params.pretraining("cpu_s")))(
        tmp_path, PARAMS
    )
    with torch.device("meta"):
        explicit = build_mae(
            params.model("cpu_s"),
            params.mae,
            params.curate.clip_frames,
            params.curate.resolution,
            params.runtime.attention,
        )
    explicit = explicit.to_empty(device="cpu")
    explicit = initialise(explicit, params.pretrain.seed, params.mae.residual_init)
    expected = explicit.state_dict()
    assert in_stage.state_dict().keys() == expected.keys()
    for name, value in in_stage.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_a_file_not_written_by_fourds_is_refused(tmp_path):
    (tmp_path / "other.gin").write_text("train.steps = 3\n")
    with pytest.raises(ValueError, match="not an operative.gin written by fourds"):
        load_operative(tmp_path / "other.gin")
