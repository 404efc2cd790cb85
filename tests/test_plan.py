"""fourds plan: the memory model's counts and measurements worked by hand on a tiny MAE, GPU
counts, time and GPU-hours, the CLI on the 4DS ladder, and the memory model against a measured
peak and the simulated cluster."""

from __future__ import annotations

import dataclasses
import importlib
import json
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import torch

from fourds.cli import main
from fourds.config import ConfigError, load_params
from fourds.config.compose import compose_params
from fourds.config.schema import Params, parse
from fourds.plan.clip_memory import Tokens
from fourds.plan.cluster import (
    GB,
    GPUS,
    INTERCONNECTS,
    Cluster,
    compute_seconds,
    fsdp_traffic_bytes,
    gpu_hours,
    make_cluster,
)
from fourds.plan.ladder import divisors, plan_ladder, plan_scale, smallest_fitting_count
from fourds.plan.memory import (
    StepSetup,
    clip_memory,
    local_elements,
    memory_per_device,
    parameter_layout,
    saved_activations,
)
from fourds.plan.simulate import simulate_step
from fourds.train.distributed import DistEnv
from fourds.train.parallelize import shard_dim
from tests.conftest import (
    REPO_ROOT,
    doc_blocks,
    doc_commands,
    run_fourds,
    tiny_mae_config,
    tiny_model_config,
)
from tests.forked_python import FORKS_RUN_AUTOGRAD

# One block of width 8 on 2x8x8 clips, tubelet 2x4x4: a 1x2x2 grid of 4 tokens, 2 visible.
TINY = tiny_model_config(width=8, depth=1, heads=2, mlp_dim=32)
TINY_MAE = tiny_mae_config(mask_ratio=0.5, decoder_width=4, decoder_depth=1, decoder_heads=2)


def tiny_setup(**changes) -> StepSetup:
    fields = dict(
        model=TINY,
        mae=TINY_MAE,
        frames=2,
        size=8,
        precision="fp32",
        activation_checkpointing=False,
        attention="sdpa",
        on_gpu=True,
    )
    return StepSetup(**{**fields, **changes})


def test_tokens_and_parameters_by_hand():
    assert clip_memory(tiny_setup()).tokens == Tokens(
        full=4, visible=2, queries=0, pixels=2 * 8 * 8 * 3
    )
    queries = dataclasses.replace(TINY_MAE, decoder="queries", query_stride=(1, 2, 2))
    assert clip_memory(tiny_setup(mae=queries)).tokens.queries == 1  # one 2x8x8 coarse patch
    layout = parameter_layout(tiny_setup())
    # Encoder: conv 3*2*4*4*8 + 8 = 776, positions 4*8 = 32, block: 2 LayerNorms 32, q 72,
    # kv 144, proj 72, MLP 8*32+32 + 32*8+8 = 552 -> 872. Decoder: input 36, mask token 4,
    # positions 16, block of width 4 (MLP 16) 244, LayerNorm 8, head 4*96+96 = 480 -> 788.
    assert layout.encoder_size == 776 + 32 + 872
    assert layout.total == 1680 + 788
    assert layout.block_sizes == [872, 244]


def encoder_block(**changes) -> tuple[int, int, int]:
    """(input, saved, backward) bytes the tiny MAE's encoder block measures, with changes to
    the step setup (model= replaces fields of TINY)."""
    model = dataclasses.replace(TINY, **changes.pop("model", {}))
    block = clip_memory(tiny_setup(model=model, **changes)).blocks[0]
    return block.input, block.saved, block.backward


def test_measured_block_activations_agree_with_counts_by_hand():
    # The encoder block runs on s=2 visible tokens of width d=8, MLP 32, 2 heads. It keeps its
    # input, both LayerNorm outputs, q, k, v, the attention output, the mid-block residual and
    # the MLP hidden layer before and after GELU: 8*s*d + 2*s*mlp = 128 + 128 elements; fp32
    # statistics: 2 LayerNorms x (mean, rstd) x s + the log-sum-exp, heads x s = 12. Its
    # backward holds the incoming gradient s*d, plus s*mlp net while GELU's backward runs (the
    # gradients after and before GELU exist, its output is freed).
    assert encoder_block() == (2 * 8 * 4, 256 * 4 + 12 * 4, (16 + 64) * 4)
    # bf16: half the bytes; the CPU's LayerNorm keeps its statistics in bf16 too (CUDA: fp32)
    assert encoder_block(precision="bf16") == (2 * 8 * 2, 256 * 2 + 8 * 2 + 4 * 4, (16 + 64) * 2)
    # parallel: one LayerNorm shared by both branches, no mid-block residual: 6*s*d + 2*s*mlp
    assert encoder_block(model={"parallel_blocks": True})[1] == 224 * 4 + (4 + 4) * 4
    # QK-LayerNorm: + normalised q and k, per-head statistics 2 x 2 x heads x s
    assert encoder_block(model={"qk_norm": True})[1] == 288 * 4 + (24 + 4) * 4
    # math: + the softmax weights heads*s*s; its output is copied when heads merge (the copy
    # is the attention output the projection keeps); no log-sum-exp
    assert encoder_block(attention="math")[1] == (256 + 8) * 4 + 8 * 4


def test_measured_activations_outside_the_blocks():
    saved = saved_activations(tiny_setup(), checkpointing=False)
    assert saved.embedding == 0  # tubelets are cut out before the embedding: indices only
    assert saved.after == (2 * 8 * 4, 0)  # the 2 encoder outputs, kept by the decoder input
    # last block output [4, 4] + LayerNorm output and statistics; the loss keeps the
    # difference (one clip), the mask as weights (4) and its sum (1)
    assert saved.head == 2 * 4 * 4 * 4 + 2 * 4 * 4 + 384 * 4 + 5 * 4
    assert saved.blocks == (1072, 256 * 4 + 24 * 4)  # decoder block: s=4, d=4, mlp=16
    assert saved.prediction == 384 * 4
    checkpointed = saved_activations(tiny_setup(), checkpointing=True)
    assert checkpointed.blocks == (2 * 8 * 4, 4 * 4 * 4)  # block inputs only
    clip = clip_memory(tiny_setup())
    assert clip.clip == 2 * 96 * 4  # the embedding keeps the 2 visible tubelets, scaled (fp32)
    assert clip.batch == 384 + 2 * 8 + 4  # uint8 clip, int64 visible indices, bool mask


def test_sharding_and_training_state_by_hand():
    shapes = ((10, 3), (1, 12, 8), (1, 10, 8), (1, 10, 6), (1,))
    assert [shard_dim(torch.Size(shape), 4) for shape in shapes] == [0, 1, 2, 0, 0]
    assert local_elements(((10, 3),), 1) == 30
    assert local_elements(((10, 3),), 4) == 3 * 3  # ceil(10 / 4) rows on rank 0
    assert local_elements(((1, 12, 8),), 4) == 3 * 8  # [1, N, d]: along N, which 4 divides
    assert local_elements(((1, 10, 8),), 4) == 10 * 2  # along d
    assert local_elements(((1, 10, 6),), 4) == 60  # neither: one row, held whole by rank 0
    setup, layout = tiny_setup(), parameter_layout(tiny_setup())
    single = memory_per_device(setup, devices=1, clips=2)
    assert (single.weights, single.gradients, single.optimizer) == (
        4 * 2468,
        4 * 2468,
        8 * 2468,
    )
    sharded = memory_per_device(setup, devices=2, clips=1)
    assert sharded.state == 16 * layout.local(2)
    assert layout.local(2) == 2468 / 2  # every sharded length is even: no padding
    assert sharded.peak == max(sharded.phases.values())


def test_checkpointing_saves_memory_and_bf16_halves_activations():
    setup = tiny_setup()
    full, checkpointed = (memory_per_device(setup, 2, 4, ckpt) for ckpt in (False, True))
    assert checkpointed.activations < full.activations
    bf16 = memory_per_device(tiny_setup(precision="bf16"), 2, 4, False)
    assert bf16.activations < full.activations
    assert bf16.state == full.state  # fp32 weights, gradients and AdamW in both


def test_smallest_gpu_count_is_the_first_divisor_that_fits():
    assert divisors(12) == [1, 2, 3, 4, 6, 12]
    setup = tiny_setup()
    peaks = {n: memory_per_device(setup, n, 8 // n, False).peak for n in divisors(8)}
    assert peaks[1] > peaks[2] > peaks[4] > peaks[8]
    assert smallest_fitting_count(setup, 8, peaks[2], False) == 2
    assert smallest_fitting_count(setup, 8, peaks[2] - 1, False) == 4
    assert smallest_fitting_count(setup, 8, 10 * peaks[1], False) == 1
    assert smallest_fitting_count(setup, 8, peaks[8] - 1, False) is None


def test_time_and_gpu_hours_by_hand():
    assert compute_seconds(1e12, 4, peak=1e15, mfu=0.5) == pytest.approx(0.008)
    assert fsdp_traffic_bytes(1000, 4, compute_bytes=2) == pytest.approx(0.75 * 1000 * 8)
    assert gpu_hours(2.0, 1800, 8) == pytest.approx(8.0)
    cluster = Cluster(GPUS["h100"], 16, INTERCONNECTS["infiniband"])
    assert cluster.bandwidth(8) == 450 * GB  # inside one node: NVLink
    assert cluster.bandwidth(16) == 50 * GB
    assert Cluster(GPUS["a100"], 64, INTERCONNECTS["nvlink"]).bandwidth(64) == 300 * GB
    with pytest.raises(ConfigError, match="unknown GPU 'v100'"):
        make_cluster("v100", 8, "infiniband")


def compose(ladder: str, path) -> None:
    """`fourds params ladder=<ladder> --out <path>`."""
    experiments = str(REPO_ROOT / "experiments")
    main(["params", f"ladder={ladder}", "--experiments", experiments, "--out", str(path)])


def test_ladder_plan_is_consistent(tmp_path):
    compose("smoke", tmp_path / "params.yaml")
    params = load_params(tmp_path / "params.yaml")
    cluster = make_cluster("a100", 4, "infiniband")
    plans = plan_ladder(params.ladder_pretraining(), cluster, mfu=0.5, checkpointing=False)
    assert [plan.scale for plan in plans] == list(params.ladder.scales)
    for plan in plans:
        assert plan.clips_per_gpu == params.pretrain.batch_size // 4
        flops = plan.flops_per_clip * plan.clips_per_gpu
        assert plan.compute_s == pytest.approx(flops / (GPUS["a100"].peak_flops("fp32") * 0.5))
        assert plan.step_s == max(plan.compute_s, plan.comm_s)
        steps = params.pretrain.steps
        assert plan.gpu_hours == pytest.approx(plan.step_s * steps * 4 / 3600)
        batch = params.pretrain.batch_size
        assert plan.clips_per_gpu_s == pytest.approx(batch / plan.step_s / 4)
        assert plan.fits and plan.min_gpus == 1
    with pytest.raises(ConfigError, match="not divisible by 3 GPUs"):
        plan_ladder(params.ladder_pretraining(), make_cluster("a100", 3, "infiniband"), 0.5, False)


def test_cli_plans_the_4ds_ladder(tmp_path, capsys):
    path = tmp_path / "params.yaml"
    compose("4ds", path)
    # without the evaluation stages (tests/plan/test_evaluation.py)
    no_rate = ["--loader-results", str(tmp_path / "none.json"), "--no-evaluation"]
    assert main(["plan", "--params", str(path), "--gpu", "h200", "--gpus", "64", *no_rate]) == 0
    out = capsys.readouterr().out
    assert "64 x H200 SXM 141GB" in out and "100,000 steps x 1,024 clips of 16x224x224" in out
    memory, time = out.split("\ntime at ")
    time, data = time.split("\ndata at ")
    assert "rate unmeasured (no loader benchmark result" in data
    scales = ["4ds_s", "4ds_b", "4ds_l", "4ds_h", "4ds_g", "4ds_e", "4ds_j"]
    for table in (memory, time, data):
        rows = [line.split() for line in table.splitlines() if line.startswith("4ds_")]
        assert [row[0] for row in rows] == scales
    j = memory.splitlines()[-1].split()
    assert j[:3] == ["4ds_j", "21.76B", "21.80B"]  # encoder, everything trained
    assert main(["plan", "--params", str(path), "--gpus", "100"]) == 2
    assert "not divisible by 100 GPUs" in capsys.readouterr().err


@pytest.mark.slow
def test_the_readme_plan_runs_as_written(tmp_path, monkeypatch, capsys):
    """README, "Planning a run": its commands, in a folder holding the config tree and the
    loader and GPU benchmarks' results, compose the 4ds ladder and print the plan the README
    shows."""
    shutil.copytree(REPO_ROOT / "experiments", tmp_path / "experiments")
    for result in ("loader_throughput.json", "gpu/summary.json"):  # the measurements it reads
        path = Path("benchmarks/results") / result
        (tmp_path / path.parent).mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / path, tmp_path / path)
    monkeypatch.chdir(tmp_path)
    compose_ladder, plan = doc_commands("Planning a run")
    assert run_fourds(compose_ladder) == 0
    capsys.readouterr()
    assert run_fourds(plan) == 0
    shown = [block.text for block in doc_blocks() if block.section == "Planning a run"]
    assert capsys.readouterr().out == shown[1]  # the block after the commands


def loader_result(path, clip: list[int], rate: float) -> str:
    """A loader_throughput result file measuring `rate` clips/s per core at `clip`."""
    record = {
        "benchmark": "loader_throughput",
        "git": {"commit": "abcdef0123", "dirty": False},
        "device": {"cpu_model": "Test CPU"},
        "config": {"clip": clip},
        "results": {"clips_per_s_per_core": rate},
    }
    path.write_text(json.dumps(record))
    return str(path)


def test_the_plan_gives_each_gpus_clip_rate_and_the_loader_cores_it_needs(tmp_path, capsys):
    """Every scale's row from a measured rate; a rate measured at another clip, and a file that
    is not a result, on the ladder's smallest scale alone (both concern the rate, the same for
    every scale; the whole ladder's plan would count each scale's FLOPs again)."""
    path = tmp_path / "params.yaml"
    compose("4ds", path)
    params = load_params(path)
    plans = plan_ladder(
        params.ladder_pretraining(), make_cluster("h100", 8, "infiniband"), 0.45, None
    )
    rate = loader_result(tmp_path / "rate.json", [16, 224, 224, 3], 25.0)
    command = ["plan", "--params", str(path), "--gpus", "8", "--no-evaluation"]
    command += ["--gpu-results", str(tmp_path / "none.json")]  # every compute time assumed
    assert main([*command, "--loader-results", rate]) == 0
    data = capsys.readouterr().out.split("\ndata at ")[1]
    assert "at 25 clips/s per core (measured: " in data and "commit abcdef0, Test CPU" in data
    rows = {line.split()[0]: line.split()[1:] for line in data.splitlines()[2:]}
    for plan in plans:
        clips_per_s = params.pretrain.batch_size / plan.step_s / 8
        assert rows[plan.scale] == [f"{clips_per_s:,.1f}", f"{clips_per_s / 25:,.1f}"]

    smallest = tmp_path / "4ds_s.yaml"
    overrides = ["ladder=4ds", "ladder.scales=[4ds_s]", "--out", str(smallest)]
    assert main(["params", *overrides, "--experiments", str(REPO_ROOT / "experiments")]) == 0
    other = loader_result(tmp_path / "other.json", [8, 64, 64, 3], 25.0)
    capsys.readouterr()
    assert main(["plan", "--params", str(smallest), *command[3:], "--loader-results", other]) == 0
    data = capsys.readouterr().out.split("\ndata at ")[1]
    assert "rate unmeasured for 16x224x224 (measured at 8x64x64)" in data
    rows = data.splitlines()[2:]
    assert [row.split()[0] for row in rows] == ["4ds_s"] and rows[0].split()[-1] == "-"

    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    assert main(["plan", "--params", str(smallest), "--loader-results", str(broken)]) == 2
    assert f"{broken} is not a loader_throughput result" in capsys.readouterr().err


@pytest.fixture
def one_thread():
    """One torch thread (a tiny model steps many times faster on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_predicted_peak_is_within_15_percent_of_the_measured_one(
    monkeypatch, one_thread, checkpointing
):
    # Real steps of the pretrain loop, peak bytes allocated replayed from the profiler
    # (benchmarks/memory_model.py runs the same measurement at every scale that fits here).
    monkeypatch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
    memory_model = importlib.import_module("memory_model")
    case = memory_model.Case("smoke_s", ("ladder=smoke",), 4, 1, "fp32", checkpointing)
    measured = memory_model.measure(case, DistEnv())["peak_bytes"]
    predicted = memory_per_device(case.setup(on_gpu=False), 1, 4).peak
    assert abs(predicted / measured - 1) <= 0.15


def ladder_4ds() -> Params:
    """The 4ds ladder's params as `fourds params ladder=4ds` composes them (xformers attention:
    the simulation runs sdpa in its place on the CPU)."""
    return parse(Params, compose_params(["ladder=4ds"], REPO_ROOT / "experiments"))


def _planned_and_simulated(
    scale: str, world_size: int, depth: int, layout: str | None = None
) -> tuple[str, int, int]:
    """The layout the plan picks on `world_size` H100s over InfiniBand for the 4ds ladder's
    `scale` with `depth` blocks (0: its own), or `layout` where given, its peak bytes per rank
    and the simulated step's in that layout (run in a worker process: the fake process group
    is process-wide)."""
    params = ladder_4ds()
    if depth:
        model = dataclasses.replace(params.model(scale), depth=depth)
        params = dataclasses.replace(params, models={**params.models, scale: model})
    if layout is not None:
        pretrain = dataclasses.replace(params.pretrain, data_parallel={scale: layout})
        params = dataclasses.replace(params, pretrain=pretrain)
    cluster = make_cluster("h100", world_size, "infiniband")
    spec = params.pretraining(scale)
    plan = plan_scale(spec, cluster, 0.45, None, 0.1)
    simulated = simulate_step(spec, world_size, layout=plan.layout).total
    return plan.layout, plan.memory.peak, simulated


@pytest.mark.slow
def test_the_real_step_on_a_simulated_cluster_agrees_with_the_plan():
    """4ds scales at 8 and 256 simulated ranks (one node and 32; fake process group, fake
    tensors), in the data-parallel layout the plan chooses there (FSDP on one node, HSDP
    beyond it): the real step shards and runs, and the plan's peak per rank is within 15% of
    it; and 4ds_s in DDP at 16 ranks.

    Each scale keeps its width, heads, MLP, QK-norm, parallel blocks and biases but runs 3
    blocks (the simulation's time grows with the block count; the plan counts blocks by
    multiplying), and 4ds_s runs its full 12 at 8 ranks to check that multiplication.

    The cases are the scales whose blocks differ in kind, each kind at both world sizes:
    4ds_s (plain blocks, a 4x MLP, no checkpointing: its full depth at 8 ranks, and DDP at
    16), 4ds_g (plain blocks, a 4.9x MLP, no checkpointing: at 256 ranks, where it agrees
    least of the scales without checkpointing; at 8 it adds nothing to 4ds_s and 4ds_e), 4ds_e
    (activation checkpointing of plain blocks, an 8.6x MLP) and 4ds_j (checkpointing, QK-norm,
    parallel blocks, no biases, 48 heads). 4ds_b, 4ds_l and 4ds_h are plain blocks with a 4x
    MLP as 4ds_s's, only wider (every width divides into a node's 8 shards): they agree within
    0.1% at both sizes and exercise nothing the cases do not. benchmarks/memory_model.py and
    `fourds plan --simulate` (docs/planning.md) cover every full scale."""
    cases = [
        ("4ds_s", 8, 0, None),  # the longest first: the two workers end together
        ("4ds_s", 16, 3, "ddp"),
        ("4ds_g", 256, 3, None),
        *[(scale, world, 3, None) for scale in ("4ds_e", "4ds_j") for world in (8, 256)],
    ]
    # two worker processes: forks of this one, torch and fourds imported, where they can be
    start = "fork" if FORKS_RUN_AUTOGRAD else "spawn"
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(start)) as pool:
        runs = dict(
            zip(cases, pool.map(_planned_and_simulated, *zip(*cases, strict=True)), strict=True)
        )
    layouts = {layout for layout, _, _ in runs.values()}
    assert layouts == {"fsdp", "hsdp", "ddp"}, layouts
    apart = {case: planned / simulated for case, (_, planned, simulated) in runs.items()}
    assert all(abs(ratio - 1) < 0.15 for ratio in apart.values()), apart


@pytest.mark.slow
def test_plan_simulates_the_composed_4ds_ladder_on_a_cpu_machine(tmp_path, capsys):
    """`fourds plan --simulate` on the ladder as `fourds params ladder=4ds` composes it
    (xformers attention, which has no CPU kernels), here its smallest scale alone: it exits 0,
    says which attention it ran, and reports progress while it works."""
    path = tmp_path / "4ds.yaml"
    experiments = str(REPO_ROOT / "experiments")
    overrides = ["ladder=4ds", "ladder.scales=[4ds_s]"]
    assert main(["params", *overrides, "--experiments", experiments, "--out", str(path)]) == 0
    assert load_params(path).runtime.attention == "xformers"
    argv = ["plan", "--params", str(path), "--gpu", "h100", "--gpus", "8", "--simulate"]
    assert main([*argv, "--no-evaluation"]) == 0
    captured = capsys.readouterr()
    simulation = captured.out.split("a simulated cluster (fourds.plan.simulate)\n", 1)[1]
    assert "runs sdpa on the CPU in place of runtime.attention=xformers" in simulation
    (row,) = [line.split() for line in simulation.splitlines() if line.startswith("4ds_s")]
    assert abs(float(row[3]) - 1) < 0.15  # plan / simulated
    assert "... planning 4ds_s" in captured.err and "... simulating 4ds_s" in captured.err


def test_under_slurm_the_plan_names_the_scales_its_time_limit_would_stop(tmp_path, capsys):
    path = tmp_path / "4ds.yaml"
    experiments = str(REPO_ROOT / "experiments")
    ten_hours = ["launcher.time_minutes=300", "launcher.requeues=1"]  # two runs of 5 h
    assert main(["params", "ladder=4ds", "launcher=slurm", *ten_hours, "--experiments",
                 experiments, "--out", str(path)]) == 0  # fmt: skip
    ladder = load_params(path).ladder_pretraining()
    plans = plan_ladder(ladder, make_cluster("h100", 256, "infiniband"), 0.45, None)
    over = [plan for plan in plans if plan.wall_hours > 10.0]
    assert over, "the 4ds ladder's longest scale should outlast 10 h"
    capsys.readouterr()
    command = ["plan", "--params", str(path), "--no-evaluation"]
    assert main([*command, "--gpu-results", str(tmp_path / "none.json")]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("slurm")]
    assert "launcher.time_minutes=300 (5.0 h) x 2 runs (launcher.requeues=1) is shorter" in line
    assert all(f"{plan.scale} (" in line for plan in over)
    needed = int(max(plan.wall_hours for plan in over) * 60 / 2) + 1
    assert f"at least {needed} " in line
    longer = [f"launcher.time_minutes={needed}", "launcher.requeues=1"]
    assert main(["params", "ladder=4ds", "launcher=slurm", *longer, "--experiments",
                 experiments, "--out", str(path)]) == 0  # fmt: skip
    assert main([*command, "--gpu-results", str(tmp_path / "none.json")]) == 0
    assert "slurm: every scale's planned wall time" in capsys.readouterr().out
