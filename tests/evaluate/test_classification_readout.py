"""The classification readout on Something-Something v2 and Kinetics in their published layouts:
the README's commands, run as written, train and score it; malformed benchmarks stop the stage
with one line."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from fourds.config import ModelConfig
from fourds.evaluate import readout as readout_module
from fourds.evaluate import readout_seeds
from fourds.models.mae import MaskedAutoencoder
from fourds.models.vit import VideoViT
from fourds.models.weights import save_mae
from tests.benchmark_files import SSV2_TEMPLATES, write_kinetics, write_ssv2
from tests.conftest import REPO_ROOT, describe_model, doc_commands, run_fourds, tiny_mae_config

SECTION = "Classification on Something-Something v2 and Kinetics"


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A folder holding the config tree (the classification readout trained 50 steps, not
    its pinned 1000), a tiny untrained encoder (4-frame 16x16 clips) at runs/pretrain/cpu_l,
    SSv2 under ssv2/ and Kinetics under kinetics400/ (six classes each, some videos missing);
    the current directory."""
    shutil.copytree(REPO_ROOT / "experiments", tmp_path / "experiments")
    task = tmp_path / "experiments/readout/task/classification.yaml"
    shortened, replaced = re.subn(r"(?m)^steps: \d+", "steps: 50", task.read_text())
    assert replaced == 1
    task.write_text(shortened)
    cfg = ModelConfig(32, 2, 2, 64, (2, 8, 8), qk_norm=True, parallel_blocks=False, bias=True)
    describe_model(tmp_path / "experiments", "cpu_l", cfg)
    mae = tiny_mae_config(mask_ratio=0.5)
    model = MaskedAutoencoder(VideoViT(cfg, 4, 16), mae)
    (tmp_path / "runs" / "pretrain" / "cpu_l").mkdir(parents=True)
    checkpoint = tmp_path / "runs" / "pretrain" / "cpu_l" / "checkpoint.pt"
    save_mae(checkpoint, model.state_dict(), cfg, mae, 4, 16)
    write_ssv2(tmp_path / "ssv2", {"train": [0, 1, 2, 3, 0, 1], "validation": [2, 3, 1]},
               skip=("1005",))  # fmt: skip
    write_kinetics(tmp_path / "kinetics400", {"train": [0, 1, 2, 3, 4, 5], "val": [0, 4]},
                   skip=("vid3",))  # fmt: skip
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_doc_commands_train_and_score_on_both_benchmarks(workspace, monkeypatch, capsys):
    heads = []

    def recording(encoder, task, *arguments):
        heads.append(task.out_dim)
        return build_readout(encoder, task, *arguments)

    build_readout = readout_module.build_readout
    monkeypatch.setattr(readout_seeds, "build_readout", recording)
    for command in doc_commands(SECTION):
        assert run_fourds(command) == 0, command
    seeds = 3  # the default's readout seeds (experiments/ladder/embedded.yaml)
    assert (
        heads == [len(SSV2_TEMPLATES)] * seeds + [6] * seeds
    )  # the label lists, not the labels seen
    for benchmark, test_clips in (("ssv2", 3), ("kinetics", 2)):
        metrics = json.loads(
            (workspace / "runs" / benchmark / "cpu_l" / "metrics/classification.json").read_text()
        )
        assert metrics["source"] == benchmark and metrics["test_clips"] == test_clips
        assert metrics["headline"] == "top1" and metrics["train_clips"] == 5
        assert 0 <= metrics["top1"] <= metrics["top5"] <= 1
        assert set(metrics["baseline"]) == {"top1", "top5"}
        record = (workspace / "runs" / benchmark / "cpu_l" / "run.yaml").read_text()
        assert ".webm" in record if benchmark == "ssv2" else "vid0_000000_000010.mp4" in record
    missing = [line for line in capsys.readouterr().err.splitlines() if "listed videos" in line]
    assert [line.split(": ", 1)[1] for line in missing] == [
        "1 of 6 listed videos are not under ssv2/20bn-something-something-v2, skipped: 1005.webm",
        "1 of 6 listed videos are not under kinetics400, skipped: vid3_000003_000013.mp4",
    ]


def readout_error(params: str, capsys) -> str:
    """The error line of a `fourds readout` that fails, checked to be all it says but the
    report of the training split's missing video."""
    command = f"fourds readout --params {params} --scale cpu_l --task classification "
    assert run_fourds(command + "--pretrained runs/pretrain/cpu_l --out runs/out") == 2
    *said, line = capsys.readouterr().err.splitlines()
    assert all("listed videos are not under" in other for other in said), said
    return line


def ssv2_params(capsys) -> str:
    source = "readouts.classification.source"
    labels = "ssv2/labels"
    overrides = f"{source}.format=ssv2 {source}.train={labels}/train.json "
    overrides += f"{source}.test={labels}/validation.json {source}.videos=ssv2 --out ssv2.yaml"
    assert run_fourds(f"fourds params {overrides}") == 0
    capsys.readouterr()
    return "ssv2.yaml"


def test_bad_json_an_unknown_label_and_a_corrupt_video_give_one_line(workspace, capsys):
    params = ssv2_params(capsys)
    labels = workspace / "ssv2" / "labels"
    good = (labels / "validation.json").read_text()
    (labels / "validation.json").write_text(good[:-5])
    assert readout_error(params, capsys).startswith(
        "fourds readout: error: ssv2/labels/validation.json: not JSON (Unterminated string"
    )
    entries = json.loads(good)
    entries[1]["template"] = "Juggling [something]"
    (labels / "validation.json").write_text(json.dumps(entries))
    assert readout_error(params, capsys) == (
        "fourds readout: error: ssv2/labels/validation.json: entry 1 (id 1007): class "
        "'Juggling something' is not one of the 6 classes of ssv2/labels/labels.json"
    )
    (labels / "validation.json").write_text(good)
    (workspace / "ssv2" / "20bn-something-something-v2" / "1002.webm").write_bytes(b"\x1aE" * 64)
    line = readout_error(params, capsys)
    assert line.startswith("fourds readout: error: ssv2/20bn-something-something-v2/1002.webm: ")
    assert line.endswith("; delete the file to skip it as a missing video")
