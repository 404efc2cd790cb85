"""The benchmark scripts run end to end in their --quick mode (tiny shapes; no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fourds.config import CurateConfig
from fourds.data.curate import curate
from fourds.plan.feed import read_loader_rate
from tests.conftest import REPO_ROOT, doc_commands
from tests.forked_python import run_python

SCRIPTS = [
    "masking_speedup",
    "step_vs_baseline",
    "attention_memory",
    "pretrain_step",
    "curation_throughput",
    "render_corpus",
    "readout_caching",
    "readout_spread",
    "readout_seeds",
    "readout_aten_calls",
    "pretrain_seeds",
    "memory_model",
]


def run_quick(name: str, out: Path) -> subprocess.CompletedProcess:
    """benchmarks/<name>.py --quick --out `out`, from the repository root; it must exit 0."""
    script = REPO_ROOT / "benchmarks" / f"{name}.py"
    result = run_python([str(script), "--quick", "--out", str(out)], REPO_ROOT, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_runs_and_writes_its_result_file(name, tmp_path):
    run_quick(name, tmp_path)
    record = json.loads((tmp_path / f"{name}.json").read_text())
    assert record["benchmark"] == name and record["results"]
    assert "device" in record and record["torch"]


@pytest.mark.slow
def test_loader_throughput_writes_the_rate_fourds_plan_reads(tmp_path):
    run_quick("loader_throughput", tmp_path)
    record = json.loads((tmp_path / "loader_throughput.json").read_text())
    assert set(record["results"]["variants"]) == {"workers_1", "workers_2"}
    rate = read_loader_rate(tmp_path / "loader_throughput.json")
    assert rate.clip == (4, 32, 32, 3) and rate.clips_per_s_per_core > 0
    one_worker = record["results"]["variants"]["workers_1"]
    assert rate.clips_per_s_per_core == one_worker["clips_per_cpu_second"]


@pytest.fixture(scope="module")
def tiny_shards(tiny_corpus, tmp_path_factory):
    """The tiny corpus curated to 12-frame pretrain segments at 32x32."""
    root = tmp_path_factory.mktemp("curated")
    curate(tiny_corpus, root, CurateConfig(4, 2, 12, 32, 8, 0.0, "center"))
    return root / "shards"


@pytest.mark.slow
def test_mae_recipe_records_both_curves_below_the_mean_colour_baseline(tiny_shards, tmp_path):
    script = REPO_ROOT / "benchmarks" / "mae_recipe.py"
    command = [str(script), "--quick", "--shards", str(tiny_shards)]
    result = run_python(
        [*command, "--seeds", "0", "1", "--out", str(tmp_path)], REPO_ROOT, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((tmp_path / "mae_recipe.json").read_text())
    assert record["device"] and record["git"]["commit"]
    steps = record["config"]["pretrain"]["steps"]
    results = record["results"]
    assert set(results["seeds"]) == {"0", "1"}
    for run in results["seeds"].values():
        baseline = run["mean_colour_baseline"]
        assert len(baseline["loss_curve"]) == steps
        assert set(run["variants"]) == {"fourds", "mae_st_recipe"}
        for variant in run["variants"].values():
            assert len(variant["loss_curve"]) == steps and variant["train_s"] > 0
            assert variant["final_loss"] < baseline["final_loss"]
    curves = [run["variants"]["fourds"]["loss_curve"] for run in results["seeds"].values()]
    assert curves[0] != curves[1]  # another seed: other initial weights and batches
    assert isinstance(results["target_met"], bool)


def test_mae_recipe_without_shards_tells_to_curate(tmp_path):
    script = REPO_ROOT / "benchmarks" / "mae_recipe.py"
    command = [str(script), "--quick", "--shards", str(tmp_path / "none")]
    result = run_python(command, REPO_ROOT, timeout=120)
    assert result.returncode != 0 and "dvc repro curate" in result.stderr


def test_mae_st_recipe_groups_and_initialisation(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
    from mae_st_recipe import MAESTRecipe, recipe_param_groups

    model = MAESTRecipe(4, 16, (2, 8, 8), 32, 1, 2, 64, True, 16, 1, 2)
    decayed, plain = recipe_param_groups(model, 0.05)
    names = {id(param): name for name, param in model.named_parameters()}
    decayed_names = {names[id(param)] for param in decayed["params"]}
    plain_names = {names[id(param)] for param in plain["params"]}
    # As mae_st's add_weight_decay: 1-D parameters and biases undecayed, the rest decayed.
    assert {"pos.spatial", "pos.temporal", "cls_token", "mask_token"} <= decayed_names
    assert {"norm.weight", "patch_embed.bias", "blocks.0.attn.q.bias"} <= plain_names
    assert decayed["weight_decay"] == 0.05 and plain["weight_decay"] == 0.0
    assert len(decayed_names) + len(plain_names) == len(names)
    assert torch.equal(model.norm.weight, torch.ones(32)) and not model.norm.bias.any()
    assert not model.decoder_cls_token.any() and not model.blocks[0].attn.q.bias.any()
    video = torch.rand(2, 4, 16, 16, 3)
    keep_index = torch.tensor([[0, 5], [1, 7]])
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask.scatter_(1, keep_index, False)
    loss, prediction = model(video, keep_index, mask)
    assert prediction.shape == (2, 8, 2 * 8 * 8 * 3) and loss.ndim == 0


def test_results_from_a_copy_of_the_tree_name_the_commit_they_were_told(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
    import harness

    monkeypatch.setenv("BENCHMARK_GIT_COMMIT", "9365dce")
    assert harness.git_state() == {"commit": "9365dce", "dirty": None}
    monkeypatch.setenv("BENCHMARK_GIT_DIRTY", "0")
    assert harness.git_state() == {"commit": "9365dce", "dirty": False}
    monkeypatch.delenv("BENCHMARK_GIT_COMMIT")

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(harness.subprocess, "run", no_git)
    assert harness.git_state() == {"commit": "unknown", "dirty": None}


def test_a_clone_run_times_each_stage_from_dvc_s_lines_and_names_the_kernels(monkeypatch, tmp_path):
    """clone_run.py splits a command's output at DVC's "Running stage" lines (the last stage up
    to the command's end); main_job.py names its result by the kernels torch ran."""
    monkeypatch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
    import clone_run
    import main_job

    lines = [
        (0.5, "Verifying data sources in stage: 'data.dvc'"),
        (2.0, "Running stage 'curate':"),
        (9.0, "> fourds curate --data data --out runs/curate"),
        (20.0, "Running stage 'pretrain@cpu_s':"),
    ]
    assert clone_run.stage_walls(lines, 50.0) == {"curate": 18.0, "pretrain@cpu_s": 30.0}
    assert clone_run.stage_walls(lines[:1], 50.0) == {}
    flags = tmp_path / "cpuinfo"
    flags.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512bw\n")
    assert main_job.has_avx512(flags) and not main_job.has_avx512(Path("/dev/null"))
    monkeypatch.setattr(main_job, "has_avx512", lambda: True)
    assert (main_job.kernels_run("default"), main_job.kernels_run("avx2")) == ("avx512", "avx2")
    monkeypatch.setattr(main_job, "has_avx512", lambda: False)
    assert main_job.kernels_run("default") == "avx2"


def test_the_suite_benchmark_reads_pytest_s_counts_and_slowest_tests(monkeypatch):
    """suite.py times the page's `pytest` and keeps what pytest says of it: the closing counts
    and the slowest tests `--durations` lists."""
    monkeypatch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
    import suite

    assert doc_commands(suite.SECTION, page=suite.PAGE)[0] == "pytest"
    lines = [
        "============================ slowest 15 durations ============================",
        "141.42s setup    tests/test_pipeline.py::test_dag_wires_every_stage",
        "68.19s call     tests/test_pipeline.py::test_the_auditing_walkthrough_runs_as_written",
        "=========================== short test summary info ============================",
        "SKIPPED [1] tests/gpu/test_world.py:14: needs a CUDA device",
        "========== 1316 passed, 15 skipped, 32 warnings in 712.14s (0:11:52) ===========",
    ]
    assert suite.counts(lines) == {"passed": 1316, "skipped": 15, "warnings": 32}
    assert suite.slowest(lines) == [
        {"seconds": 141.42, "phase": "setup", "test": lines[1].split()[-1]},
        {"seconds": 68.19, "phase": "call", "test": lines[2].split()[-1]},
    ]


SPIN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"


def test_the_suite_benchmark_counts_each_test_s_cpu_and_the_children_it_waited_for(
    tmp_path, monkeypatch
):
    """cpu_per_test.py, loaded as suite.py loads it: a test's own CPU seconds and those of the
    process it ran are its record's, and the summary ranks the tests by them and says when each
    worker ran out of tests."""
    (tmp_path / "test_work.py").write_text(
        "import subprocess, sys\n"
        f"def test_own():\n    exec({SPIN!r})\n"
        f"def test_child():\n    subprocess.run([sys.executable, '-c', {SPIN!r}], check=True)\n"
        "def test_idle():\n    pass\n"
    )
    records = tmp_path / "cpu"
    records.mkdir()
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "benchmarks"), *sys.path]),
        "PYTEST_PLUGINS": "cpu_per_test",
        "FOURDS_CPU_PER_TEST": str(records),
    }
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_work.py"]
    ran = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    monkeypatch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
    import cpu_per_test

    found = {r["test"].split("::")[1]: r for r in cpu_per_test.read_records(records)}
    assert found["test_own"]["own"] >= 0.3 and found["test_own"]["children"] < 0.1
    assert found["test_child"]["children"] >= 0.3
    assert found["test_idle"]["own"] + found["test_idle"]["children"] < 0.2
    summary = cpu_per_test.summary(list(found.values()))
    assert [entry["test"].split("::")[1] for entry in summary["by_test"]][-1] == "test_idle"
    assert summary["by_file"] == [
        {"file": "test_work.py", "seconds": summary["total_seconds"], "tests": 3}
    ]
    (worker,) = summary["workers"]  # one process ran them, one after another
    assert worker["tests"] == 3 and 0.6 <= worker["busy_seconds"] <= worker["done_at_seconds"]


def test_the_plan_benchmark_finds_the_longest_wait_for_a_line(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
    import plan_simulate

    assert plan_simulate.silences([2.0, 3.0, 10.0], 12.0) == (2.0, 7.0)
    assert plan_simulate.silences([], 5.0) == (5.0, 5.0)


def test_the_gpu_checks_script_parses_and_runs_benchmarks_that_exist():
    script = REPO_ROOT / "benchmarks" / "gpu_checks.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    lines = script.read_text().splitlines()
    loop = next(line.strip() for line in lines if line.strip().startswith("for bench"))
    names = loop.split(" in ", 1)[1].removesuffix("; do").split()
    assert names and all((REPO_ROOT / "benchmarks" / f"{name}.py").is_file() for name in names)


@pytest.mark.slow
def test_the_gpu_step_benchmark_writes_its_summary_case_by_case(tmp_path):
    run_quick("gpu_step", tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    keys = {"device", "torch", "commit", "dirty", "gemm_tflops", "copy_tb_s", "cases"}
    assert keys <= set(summary) and summary["gemm_tflops"] > 0 and summary["copy_tb_s"] > 0
    case_keys = {"scale", "batch", "what", "compile", "attention", "ms", "tflops", "peak_mib"}
    assert [(case["scale"], case["what"]) for case in summary["cases"]] == [
        ("4ds_b", "model"), ("4ds_b", "step"), ("4ds_l", "model")
    ]  # fmt: skip
    assert all(case_keys <= set(case) and case["ms"] > 0 for case in summary["cases"])
    lines = (tmp_path / "cases.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == summary["cases"]
    assert any(reason.startswith("xformers: ") for reason in summary["skipped"])
    assert [profile["steps"] for profile in summary["profile"]] == [3, 3]
    assert summary["profile"][0]["top"][0]["ms_per_step"] > 0
    assert summary["loader"]["loader_cores_needed"] > 0


def test_the_sdpa_kernel_benchmark_times_what_runs_and_says_why_the_rest_does_not(tmp_path):
    run_quick("sdpa_kernels", tmp_path)
    record = json.loads((tmp_path / "sdpa_kernels.json").read_text())
    assert {"device", "torch", "commit", "dirty", "scales"} <= set(record)
    for entry in record["scales"].values():
        timings = entry["ms_per_step"]
        assert timings["sdpa"] > 0 and timings["sdpa_flash"] > 0  # both run on the CPU
        assert "No viable backend" in timings["sdpa_cudnn"]  # CUDA only: the probe's reason


def test_the_sdpa_kernel_benchmark_reads_the_ladders_attention_calls(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
    import sdpa_kernels
    import setups

    # 4DS-L: 78 visible tokens (5% of 8 x 14 x 14) through 22 blocks, plus 392 query tokens
    # (8 x 7 x 7 coarse patches) through the last 2; 16 heads of 64
    calls = sdpa_kernels.attention_calls(setups.compose_ladder("ladder=4ds"), "4ds_l", 128)
    assert calls == {(128, 16, 78, 64): 22, (128, 16, 470, 64): 2}


def test_the_profile_summary_counts_busy_time_waits_and_copies(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
    import types

    import gpu_step

    cuda, cpu = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU

    def event(name, device, start, end):
        span = types.SimpleNamespace(start=start, end=end)
        return types.SimpleNamespace(name=name, device_type=device, time_range=span)

    events = [
        event("gemm", cuda, 0, 40),
        event("elementwise", cuda, 30, 50),  # overlaps the gemm: counted once
        event("Memcpy HtoD (Pinned -> Device)", cuda, 60, 80),
        event("cudaStreamSynchronize", cpu, 50, 60),
        event("aten::_local_scalar_dense", cpu, 10, 11),
        event("aten::mm", cpu, 0, 1),
    ]
    counts = gpu_step.profile_counts(events, wall_us=100.0, steps=2)
    assert counts == {
        "gpu_busy_fraction": 0.7,
        "host_syncs_per_step": 1.0,
        "copies_per_step": {"HtoD": 0.5},
    }


def test_the_scaling_law_reads_every_run_of_a_world_study_and_fits_each_world(tmp_path):
    """On the shipped complexity study (three continuous worlds, three scales, two seeds)."""
    script = REPO_ROOT / "benchmarks" / "scaling_law.py"
    sweep = REPO_ROOT / "benchmarks/results/complexity_study.json"
    command = [str(script), "--sweep", str(sweep), "--out", str(tmp_path)]
    result = run_python(command, REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((tmp_path / "scaling_law.json").read_text())
    assert record["default_world"] == "standard"
    runs = record["runs"]
    assert len(runs) == 3 * 3 * 2 and {run["world"] for run in runs} == {
        "simple",
        "standard",
        "rich",
    }
    keys = {"world", "scale", "params", "seed", "lr", "steps", "heldout_loss"}
    assert all(set(run) == keys and isinstance(run["params"], int) for run in runs)
    standard = record["results"]["worlds"]["standard"]
    assert [row["scale"] for row in standard["scales"]] == ["ref_s", "ref_m", "ref_l"]
    assert standard["falls"] is False  # the continuous world's loss does not fall with scale
    fit = standard["fit"]
    assert fit["b"] < 0.05 and fit["c"] >= 0
    assert (tmp_path / "scaling_law.png").stat().st_size > 0


def test_the_aten_call_count_leaves_out_what_launches_no_kernel():
    """benchmarks/readout_aten_calls.py counts calls that would launch a kernel: an add and a
    matrix product, not a view, a detach or a host scalar's read; the profiler's count takes a
    composite call once (matmul), the dispatch counter its parts (mm)."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from readout_aten_calls import counted, profiled

    a = torch.ones(2, 3, device="cpu")

    def step() -> None:
        c = (a + 1).view(3, 2).detach()
        (a @ c).sum().item()
        a.t()

    total, calls = counted(step)
    assert dict(calls) == {"aten.add": 1, "aten.mm": 1, "aten.sum": 1} and total == 3
    assert profiled(step) == 3  # add, matmul (a composite call, once) and sum
