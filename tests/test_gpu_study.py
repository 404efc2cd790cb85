"""The GPU study's one script (benchmarks/gpu_study.sh), rehearsed on the CPU: the smoke study,
the world's rate and the whole pipeline of a ladder that pretrains on the rendered world, through
`dvc repro` in a repository of its own, with what it returns."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile

import pytest

from tests.conftest import REPO_ROOT

SMALL_CORPUS = "--videos pretrain=4 readout-train=4 readout-test=4 --size 32"


@pytest.mark.slow
def test_the_gpu_study_script_runs_end_to_end_on_the_cpu(tmp_path):
    environment = {
        **os.environ,
        "LADDER": "gpu_smoke",
        "DEVICE": "cpu",
        "OVERRIDES": "runtime.device=cpu pretrain.precision=fp32 pretrain.compile=false",
        "SYNTH_ARGS": SMALL_CORPUS,
        "WORLD_RATE_ARGS": "--ladder gpu_smoke --scale gpu_s --steps 1",
        "PYTHON": "python",
    }
    out = tmp_path / "out"
    result = subprocess.run(
        ["bash", "benchmarks/gpu_study.sh", str(out)],
        cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke study passed" in result.stdout and "failed" not in result.stdout
    returned = sorted(path.name for path in out.iterdir())
    assert len(returned) <= 8 and all(path.stat().st_size < 16 * 2**20 for path in out.iterdir())

    summary = json.loads((out / "summary.json").read_text())["results"]
    assert summary["ladder"] == "gpu_smoke" and summary["repro_seconds"] > 0
    stages = summary["stages"]
    assert "curate" in stages and {"pretrain/gpu_s", "pretrain/gpu_b"} <= stages.keys()
    assert sum(name.startswith("readout/") for name in stages) == 2 * 5 * 2  # scales x tasks x regimes
    assert all(stages[f"pretrain/{scale}"]["clips_per_second"] > 0 for scale in ("gpu_s", "gpu_b"))
    assert summary["pretraining"]["gpu_s"]["max_times_a_clip_was_seen"] == 1
    assert set(summary["checkpoint_md5"]) == {f"runs/pretrain/{s}/checkpoint.pt" for s in ("gpu_s", "gpu_b")}
    rate = json.loads((out / "world_rate.json").read_text())["results"]
    assert rate["render_clips_per_s"] > 0 and rate["step_clips_per_s"] > 0

    with tarfile.open(out / "gpu_smoke-reference.tar.gz") as archive:
        names = archive.getnames()
    assert "gpu_smoke-reference/dvc.lock" in names
    assert "gpu_smoke-reference/report/scaling.html" in names
    assert "gpu_smoke-reference/readout/gpu_b-pose-frozen/clips.csv" in names
    assert not any("checkpoints" in name for name in names)  # weights stay behind
