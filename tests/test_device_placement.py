"""Every tensor the accelerator path makes is placed on its device, checked on the CPU.

The suite has no GPU, and on the CPU a tensor made without a device lands where the model is, so
a missing `device=` passes every CPU test and crashes on CUDA ("Expected all tensors to be on the
same device"). Under `torch.set_default_device("meta")` such a tensor is made on the meta device
instead and fails beside the CPU tensors here as it would beside CUDA ones. The stages run
in-process under that default with the model and data placed on the CPU explicitly (params'
runtime.device), so every path below would have caught the held-out evaluation that stacked its
CUDA loss with a CPU count.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from fourds import layout
from fourds.cli import main
from fourds.plan import fits
from tests.train.conftest import write_tiny_params


@pytest.fixture
def meta_default_device():
    """The default device is meta for the test's duration."""
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(None)


def test_the_guard_fails_a_tensor_made_without_its_device(meta_default_device):
    placed = torch.zeros(2, device="cpu")
    with pytest.raises((RuntimeError, NotImplementedError)):
        torch.stack([placed.sum(), torch.tensor(2.0)]).tolist()
    assert torch.stack([placed.sum(), torch.tensor(2.0, device="cpu")]).tolist() == [0.0, 2.0]


def tiny_study_params(tmp_path, source: str):
    """The tiny model's params on `source` ('shards' or 'world'), with a held-out curve at
    two steps, few readout steps and small readouts and fidelity."""
    path = write_tiny_params(
        tmp_path / "params.yaml",
        steps=4,
        heldout_every=2,
        heldout_clips=4,
        source=source,
        crop_scale=[1.0, 1.0] if source == "world" else [0.5, 1.0],
    )
    raw = yaml.safe_load(path.read_text())
    for readout in raw["readouts"].values():
        readout.update(steps=2, batch_size=2, width=16, heads=2)
    raw["readout"]["regimes"] = ["frozen"]
    raw["fidelity"].update(clips=0, batch_size=2, frames_per_clip=2, kid_subset_size=2)
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def no_memory_check(monkeypatch):
    """The pretrain stage without its first check, the planner's memory model, whose fake
    steps model the device on the host (fourds.plan.fits; tested in tests/plan)."""
    monkeypatch.setattr(fits, "check_pretraining_fits", lambda params, scales: None)


@pytest.mark.parametrize("source", ["shards", "world"])
def test_pretraining_and_its_held_out_curve_place_every_tensor(
    tiny_shards, tmp_path, source, no_memory_check, meta_default_device
):
    params = tiny_study_params(tmp_path, source)
    out = tmp_path / "pretrain"
    command = ["pretrain", "--params", str(params), "--scale", "tiny"]
    assert main([*command, "--curated", str(tiny_shards), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["heldout_loss"] > 0


@pytest.fixture(scope="module")
def pretrained(tiny_shards, tmp_path_factory):
    """(params, pretrain folder) of the tiny model pretrained for a few steps."""
    root = tmp_path_factory.mktemp("placement")
    params = tiny_study_params(root, "shards")
    out = root / "pretrain" / "tiny"
    command = ["pretrain", "--params", str(params), "--scale", "tiny"]
    assert main([*command, "--curated", str(tiny_shards), "--out", str(out)]) == 0
    return params, out


@pytest.mark.parametrize("task", ["depth", "pose", "tracking", "boxes", "classification"])
def test_a_readout_places_every_tensor(
    tiny_shards, pretrained, tmp_path, task, meta_default_device
):
    params, checkpoint = pretrained
    out = tmp_path / task
    command = ["readout", "--params", str(params), "--scale", "tiny", "--task", task]
    command += ["--regime", "frozen", "--curated", str(tiny_shards)]
    assert main([*command, "--pretrained", str(checkpoint), "--out", str(out)]) == 0
    metrics = json.loads(layout.ReadoutFiles.inside(out, task).metrics.read_text())
    assert metrics["task"] == task


@pytest.mark.parametrize("task", ["depth", "pose", "tracking"])
def test_seeds_trained_batched_place_every_tensor(
    tiny_shards, pretrained, tmp_path, task, monkeypatch, meta_default_device
):
    """Two seeds trained as one batched model, the GPU's way (fourds.evaluate.batched_seeds)."""
    from fourds.evaluate import readout_seeds

    monkeypatch.setattr(readout_seeds, "seed_training", lambda spec, device: "batched")
    params, checkpoint = pretrained
    raw = yaml.safe_load(params.read_text())
    raw["readouts"][task]["seeds"] = 2
    two_seeds = tmp_path / "params.yaml"
    two_seeds.write_text(yaml.safe_dump(raw))
    out = tmp_path / task
    command = ["readout", "--params", str(two_seeds), "--scale", "tiny", "--task", task]
    command += ["--regime", "frozen", "--curated", str(tiny_shards)]
    assert main([*command, "--pretrained", str(checkpoint), "--out", str(out)]) == 0
    metrics = json.loads(layout.ReadoutFiles.inside(out, task).metrics.read_text())
    assert len(metrics["seed_headlines"]) == 2


def test_fidelity_places_every_tensor(
    tiny_shards, pretrained, tmp_path, monkeypatch, meta_default_device
):
    """fourds' reconstructions under the guard; torch-fidelity's statistics (not fourds' code,
    and device-aware on their own) and the extractor they call run with the CPU as default."""
    import torch_fidelity

    from_torch_fidelity = torch_fidelity.calculate_metrics

    def on_the_cpu(**kwargs):
        with torch.device("cpu"):
            return from_torch_fidelity(**kwargs)

    monkeypatch.setattr(torch_fidelity, "calculate_metrics", on_the_cpu)
    params, checkpoint = pretrained
    out = tmp_path / "fidelity"
    command = ["fidelity", "--params", str(params), "--scale", "tiny"]
    command += ["--curated", str(tiny_shards)]
    assert main([*command, "--pretrain-root", str(checkpoint.parent), "--out", str(out)]) == 0
    assert "psnr" in json.loads((out / "metrics.json").read_text())
