"""The readout and fidelity stages' memory on one GPU, measured on fake tensors: 4DS-j fits an
80 GB GPU in bf16 and not in fp32, the parts add up on a small scale, and `fourds plan` prints a
row per scale."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fourds.cli import main
from fourds.config import Params
from fourds.config.compose import compose_params
from fourds.config.schema import parse
from fourds.models.vit import VideoViT, count_parameters
from fourds.plan.cluster import GPUS
from fourds.plan.evaluation import (
    MEASURED_BLOCKS,
    FidelityMemory,
    ReadoutMemory,
    fidelity_memory,
    readout_memory,
)
from tests.conftest import REPO_ROOT

H100 = GPUS["h100"].memory_bytes
USABLE = 0.9 * H100  # the plan's default headroom


def ladder(name: str, *overrides: str) -> Params:
    return parse(Params, compose_params([f"ladder={name}", *overrides], REPO_ROOT / "experiments"))


def encoder_parameters(params: Params, scale: str) -> int:
    """The encoder's parameter count (built on the meta device: no memory)."""
    curate = params.curate
    with torch.device("meta"):
        encoder = VideoViT(params.model(scale), curate.clip_frames, curate.resolution)
    return count_parameters(encoder)


@pytest.fixture(scope="module")
def four_ds() -> Params:
    """The 4ds ladder with one readout task (the encoder's weights dominate every task)."""
    params = ladder("4ds")
    return dataclasses.replace(params, readout=dataclasses.replace(params.readout, tasks=("pose",)))


def with_precision(params: Params, precision: str) -> Params:
    readout = dataclasses.replace(params.readout, precision=precision)
    fidelity = dataclasses.replace(params.fidelity, precision=precision)
    return dataclasses.replace(params, readout=readout, fidelity=fidelity)


def readouts_of(params: Params, scale: str) -> list[ReadoutMemory]:
    """readout_memory of `scale` as `fourds plan` measures it."""
    return readout_memory(params.pretraining(scale), params.readout, params.readouts)


def fidelity_of(params: Params, scale: str) -> FidelityMemory:
    """fidelity_memory of `scale` as `fourds plan` measures it."""
    extractor = params.model(params.fidelity.extractor_scale)
    return fidelity_memory(params.pretraining(scale), params.fidelity, extractor)


def test_readout_at_4ds_j_fits_an_80gb_gpu_in_bf16_and_not_in_fp32(four_ds):
    (half,) = readouts_of(with_precision(four_ds, "bf16"), "4ds_j")
    (full,) = readouts_of(with_precision(four_ds, "fp32"), "4ds_j")
    assert half.weights == 2 * encoder_parameters(four_ds, "4ds_j")  # 21.76B
    assert full.weights == 2 * half.weights
    assert half.peak < USABLE < H100 < full.weights < full.peak


def test_fidelity_at_4ds_j_fits_in_bf16_with_4ds_s_extracting(four_ds):
    memory = fidelity_of(four_ds, "4ds_j")  # the ladder pins bf16 and 4ds_s
    assert memory.extractor == 2 * encoder_parameters(four_ds, "4ds_s")
    assert memory.mae < memory.reconstruct == memory.peak < USABLE
    assert memory.extractor < memory.extract < memory.reconstruct


def test_the_passes_without_gradients_measured_on_two_blocks_peak_as_on_all(four_ds):
    """4DS-S's 12 blocks: its readout's feature pass, the MAE's reconstructions and the
    extractor's features peak on the first two blocks (the others' weights added) exactly as
    on the whole depth."""
    spec, extractor = four_ds.pretraining("4ds_s"), four_ds.model(four_ds.fidelity.extractor_scale)
    assert spec.model.depth > MEASURED_BLOCKS
    measured = [
        (
            readout_memory(spec, four_ds.readout, four_ds.readouts, blocks),
            fidelity_memory(spec, four_ds.fidelity, extractor, blocks),
        )
        for blocks in (MEASURED_BLOCKS, None)
    ]
    assert measured[0] == measured[1]


def test_every_task_and_phase_runs_in_bf16_beside_the_weights():
    params = with_precision(ladder("smoke"), "bf16")
    encoder = encoder_parameters(params, "smoke_s")
    memories = readouts_of(params, "smoke_s")
    assert [memory.task for memory in memories] == list(params.readout.tasks)
    for memory in memories:
        assert memory.weights == 2 * encoder
        assert memory.features > memory.weights and memory.head_step > memory.weights
    fidelity = fidelity_of(params, "smoke_s")
    assert fidelity.reconstruct > fidelity.mae > 2 * encoder
    assert fidelity.extractor == 2 * encoder_parameters(params, "smoke_l")


def test_an_extractor_read_from_a_file_is_not_measured():
    params = ladder("smoke")
    fidelity = dataclasses.replace(params.fidelity, encoder_weights="official-4ds-b.pt")
    memory = fidelity_of(dataclasses.replace(params, fidelity=fidelity), "smoke_s")
    assert memory.extractor is None and memory.extract is None
    assert memory.peak == memory.reconstruct


def test_the_plan_prints_the_evaluation_stages_a_row_per_scale(tmp_path, capsys):
    path = tmp_path / "params.yaml"
    experiments = str(REPO_ROOT / "experiments")
    compose = ["params", "ladder=smoke", "readout.tasks=[depth]", "--experiments", experiments]
    main([*compose, "--out", str(path)])
    no_rate = ["--loader-results", str(tmp_path / "none.json")]
    assert main(["plan", "--params", str(path), "--gpus", "8", *no_rate]) == 0
    out = capsys.readouterr().out
    evaluation = out[out.index("readout and fidelity stages on one H100 SXM 80GB each") :]
    readout, fidelity = evaluation.split("\nfidelity@<scale>, in fp32")
    assert "frozen encoder in fp32" in readout
    assert "then the extractor (smoke_l) on 16 frames" in fidelity
    for table in (readout, fidelity):
        rows = [line.split() for line in table.splitlines() if line.startswith("smoke_")]
        assert [row[0] for row in rows] == ["smoke_s", "smoke_l"]
        assert all(row[-1] == "yes" for row in rows)
