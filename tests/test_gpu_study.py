"""The GPU study's one script (benchmarks/gpu_study.sh), rehearsed on the CPU: the smoke study,
the world's rate and the whole pipeline of a ladder that pretrains on the rendered world, through
`dvc repro` in a repository of its own, with what it returns."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from fourds import layout
from fourds.config.compose import compose_params
from fourds.config.schema import Params, parse
from fourds.models.factory import initial_encoder
from fourds.models.flops import training_flops_per_clip
from fourds.models.vit import count_parameters
from tests.conftest import REPO_ROOT, doc_commands

OUT = REPO_ROOT / "benchmarks/results/quick/gpu-study"  # REHEARSE=1's (git ignores it)


@pytest.mark.slow
def test_the_gpu_study_script_runs_end_to_end_on_the_cpu(tmp_path):
    (command,) = doc_commands("The GPU study", 1)  # REHEARSE=1 bash benchmarks/gpu_study.sh
    shutil.rmtree(OUT, ignore_errors=True)
    result = subprocess.run(
        ["bash", "-c", command], cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200
    )
    out = OUT
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke study passed" in result.stdout and "failed" not in result.stdout
    returned = sorted(path.name for path in out.iterdir())
    assert len(returned) <= 8 and all(path.stat().st_size < 16 * 2**20 for path in out.iterdir())

    summary = json.loads((out / "summary.json").read_text())["results"]
    assert summary["ladder"] == "gpu_smoke" and summary["repro_seconds"] > 0
    stages = summary["stages"]
    assert "curate" in stages and {"pretrain/gpu_s", "pretrain/gpu_b"} <= stages.keys()
    readouts = [name for name in stages if name.startswith(f"{layout.READOUT}/")]
    assert set(readouts) == {  # a stage per scale and regime, every task of readout.tasks in it
        stage.folder.as_posix()
        for stage in layout.readouts(("gpu_s", "gpu_b"), ("frozen", "initial"))
    }
    assert all(stages[f"pretrain/{scale}"]["clips_per_second"] > 0 for scale in ("gpu_s", "gpu_b"))
    assert summary["pretraining"]["gpu_s"]["max_times_a_clip_was_seen"] == 1
    assert set(summary["checkpoint_md5"]) == {
        f"runs/pretrain/{s}/checkpoint.pt" for s in ("gpu_s", "gpu_b")
    }
    # the readouts and fidelity ran two at a time in copies of the study's repository
    # (`fourds repro-parallel`); its own `dvc repro` took them from DVC's run cache
    assert summary["parallel"]["jobs"] == 2
    log = (out / "study.log").read_text()
    assert "Running stage 'readout@" not in log and "Running stage 'fidelity@" not in log
    assert f"'{layout.readout('gpu_b', 'frozen').name}' is cached - skipping run" in log
    assert all(  # its records kept, each task's seconds by part
        set(stages[name]["tasks"]) == {"depth", "tracking"}
        and all("encode_seconds" in seconds for seconds in stages[name]["tasks"].values())
        for name in readouts
    )
    rate = json.loads((out / "world_rate.json").read_text())["results"]
    assert rate["render_clips_per_s"] > 0 and rate["step_clips_per_s"] > 0

    with tarfile.open(out / "gpu_smoke-study.tar.gz") as archive:
        names = archive.getnames()
    assert {"dvc.lock", "world.dvc", "reports/gpu_smoke-reference/dvc.lock"} <= set(names)
    clips = layout.ReadoutFiles.of("gpu_b", "tracking", "frozen").clips
    assert f"reports/gpu_smoke-reference/{clips.as_posix()}" in names
    assert not any(name.endswith(".pt") or "/shards" in name for name in names)  # left behind

    # the report, built from what came back as the page says (where its wheels do not travel)
    shutil.copy2(out / "gpu_smoke-study.tar.gz", tmp_path / "gpu-study.tar.gz")
    (tmp_path / "reports").mkdir()
    shutil.copy2(REPO_ROOT / "reports/scaling.ipynb", tmp_path / "reports")
    for command in doc_commands("On a bare machine", page="docs/gpu-study.md"):
        subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True, capture_output=True)
    assert "gpu_b" in (tmp_path / "gpu-study/reports/out/scaling.html").read_text()


def test_work_keeps_the_study_folder_for_a_second_command(tmp_path):
    """WORK=<folder> (a study over two commands): the script works there, and what it made
    stays after it ends, for a second command to go on from."""
    work, out = tmp_path / "work", tmp_path / "out"
    environment = {**os.environ, "REHEARSE": "1", "PARTS": "rate", "WORK": str(work)}
    subprocess.run(
        ["bash", "benchmarks/gpu_study.sh", str(out)], cwd=REPO_ROOT, env=environment,
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    assert (work / "bin" / "fourds").is_file() and (out / "world_rate.json").is_file()


def test_the_gpu_ladder_is_the_study_the_issue_asks_for():
    """Three scales over 10x apart, each with at least 100x the pretraining FLOPs of the
    reference study's scale of the same rank, on fresh rendered clips; five tasks, the control,
    three readout seeds."""
    params = parse(Params, compose_params(["ladder=gpu"], REPO_ROOT / "experiments"))
    scales = params.ladder.scales
    reference = [
        json.loads((REPO_ROOT / f"reports/reference/pretrain/{scale}/metrics.json").read_text())
        for scale in ("ref_s", "ref_m", "ref_l")
    ]
    counts, flops = [], []
    for scale in scales:
        spec = params.pretraining(scale)
        counts.append(count_parameters(initial_encoder(spec)))
        per_clip = training_flops_per_clip(spec.model, spec.mae, 8, spec.curate.resolution)
        flops.append(per_clip * spec.pretrain.steps * spec.pretrain.batch_size)
    assert len(scales) >= 3 and counts[-1] >= 10 * counts[0]
    assert all(
        ours >= 100 * theirs["pretrain_flops"]
        for ours, theirs in zip(flops, reference, strict=True)
    )
    assert params.pretrain.source == "world" and params.curate.clip_frames == 8
    assert len(params.readout.tasks) == 5 and "initial" in params.readout.regimes
    assert all(params.readouts[task].seeds >= 3 for task in params.readout.tasks)


def test_the_fitted_pretraining_steps_fit_the_seconds_and_never_exceed_the_ladder(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
    study_steps = importlib.import_module("study_steps")
    params = parse(Params, compose_params(["ladder=gpu"], REPO_ROOT / "experiments"))
    rate = {"render_clips_per_s": 20_000.0, "step_clips_per_s": 6_000.0}
    per_step = sum(study_steps.seconds_per_step(params, rate).values())

    def fitted(seconds: float) -> dict[str, int]:
        overrides = study_steps.fitted_overrides(params, rate, seconds)
        return {item.split("=")[0]: int(item.split("=")[1]) for item in overrides}

    middle = fitted(300.0)
    assert middle["pretrain.steps"] % 16 == 0
    assert middle["pretrain.steps"] * per_step <= 300.0 < (middle["pretrain.steps"] + 16) * per_step
    assert middle["pretrain.warmup_steps"] == round(middle["pretrain.steps"] / 10)
    assert fitted(1e6)["pretrain.steps"] == params.pretrain.steps  # a fast device: the ladder's
    fewest = fitted(-5.0)  # no time left
    assert fewest["pretrain.steps"] == 16
    for case in (middle, fewest):  # params accept them
        overrides = [f"{key}={value}" for key, value in case.items()]
        parse(Params, compose_params(["ladder=gpu", *overrides], REPO_ROOT / "experiments"))
