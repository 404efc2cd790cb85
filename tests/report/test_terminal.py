"""`fourds answer`: the report's answer as plain text, from a runs folder."""

from __future__ import annotations

import json

import numpy as np
import yaml

from fourds import layout
from fourds.cli import main
from fourds.config import load_params
from fourds.config.tasks import TASKS
from fourds.report.terminal import answer_text
from tests.conftest import REPO_ROOT
from tests.report.test_front import study

PARAMS = REPO_ROOT / "params.yaml"


def test_the_answer_has_the_sentence_and_a_row_per_scale_with_every_comparison():
    text = answer_text(study())
    sentence, boxes, pose = text.strip().split("\n\n")
    assert sentence.startswith("At the largest scale (l) pretraining beats the random-network")
    assert "\n" in sentence  # wrapped
    header, *rows = boxes.splitlines()[1:]
    assert header.split() == [
        "scale",
        "frozen",
        "vs",
        "baseline",
        "vs",
        "control",
        "vs",
        "s",
    ]
    assert [row.split()[0] for row in rows] == ["s", "m", "l"]
    assert rows[2].split()[4:6] == ["better", "+0.100"]  # over the baseline, by 0.1
    assert "⚠" in pose.splitlines()[3] and "⚠" not in pose.splitlines()[2]  # m is flagged
    assert max(len(line) for line in text.splitlines()) < 160  # reads in a terminal


def write_runs(root, params, gain: float, noise: float = 0.0, shifted: dict | None = None):
    """A runs folder of the default ladder whose pretrained readouts beat a baseline by `gain`
    on every clip and the control is level with it, each stage's clips off by a draw of
    standard deviation `noise`; `shifted` maps (scale, task, regime) to an amount added to that
    stage's every clip."""
    rng = np.random.default_rng(0)
    baseline = rng.uniform(0.3, 0.5, size=24)
    for scale in params.ladder.scales:
        (root / "pretrain" / scale).mkdir(parents=True)
        (root / "pretrain" / scale / "metrics.json").write_text(json.dumps({"loss": 0.02}))
        for task in params.readout.tasks:
            metric, label = TASKS[task].headline, TASKS[task].title
            sign = 1 if "higher" in label else -1
            for regime in params.readout.regimes:
                values = baseline + (sign * gain if regime == "frozen" else 0)
                values = values + rng.normal(0, noise, size=len(baseline)) if noise else values
                values = values + (shifted or {}).get((scale, task, regime), 0.0)
                clips = layout.ReadoutFiles.of(scale, task, regime).at(root).clips
                clips.parent.mkdir(parents=True, exist_ok=True)
                lines = [f"clip,{metric},baseline_{metric},weight"]
                pairs = enumerate(zip(values.tolist(), baseline.tolist(), strict=True))
                lines += [f"{i},{v!r},{b!r},1" for i, (v, b) in pairs]
                clips.write_text("\n".join(lines) + "\n")


def test_fourds_answer_reads_a_runs_folder(tmp_path, capsys):
    params = load_params(PARAMS)
    write_runs(tmp_path / "runs", params, gain=0.05)
    assert main(["answer", "--params", str(PARAMS), "--runs", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("At the largest scale (cpu_l) pretraining beats the control at")
    assert "MAE loss falls with scale cannot be told from one pretraining seed" in " ".join(
        out.split()
    )
    for task in params.readout.tasks:
        assert TASKS[task].title in out
    tables = out.split("\n\n", 1)[1]
    per_scale = 2 * len(params.readout.tasks)  # over the baseline and over the control
    assert "⚠" not in tables
    assert tables.count("better +0.0500") == per_scale * len(params.ladder.scales)


def test_fourds_answer_on_one_scale_says_there_is_no_scaling_to_show(tmp_path, capsys):
    raw = yaml.safe_load(PARAMS.read_text())
    raw["ladder"]["scales"] = ["cpu_l"]  # one scale of the embedded ladder
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(raw))
    params = load_params(params_path)
    write_runs(tmp_path / "runs", params, gain=0.05)
    assert main(["answer", "--params", str(params_path), "--runs", str(tmp_path / "runs")]) == 0
    sentence, *tables = capsys.readouterr().out.split("\n\n")
    assert (
        "with one scale (cpu_l) there is no scale comparison and no scaling fit: both need two "
        "or more scales in ladder.scales"
    ) in " ".join(sentence.split())
    assert len(tables) == len(params.readout.tasks)
    for table in tables:
        header, row = table.splitlines()[1:]
        assert header.split() == ["scale", "frozen", "vs", "baseline", "vs", "control"]
        assert row.split()[0] == "cpu_l" and row.count("better +0.0500") == 2
