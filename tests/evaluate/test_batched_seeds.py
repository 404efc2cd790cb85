"""A readout's seeds trained as one batched model (fourds.evaluate.batched_seeds, the GPU's way)
end where each seed trained alone ends, within the regeneration contract's tolerance for the
task (reports/tolerances.yaml: AdamW's steps carry rounding differences as another CPU's
kernels do): the readout stage run both ways on the tiny encoder, every task's head (the pose
readout's running token mean and the tracking readout's two heads included)."""

from __future__ import annotations

import pytest

from fourds.evaluate import batched_seeds, readout_seeds
from fourds.tolerances import load_contract
from tests.conftest import REPO_ROOT
from tests.evaluate.test_readout_stage import run_readout, setup  # noqa: F401 (fixture)

STEPS = 12


@pytest.mark.parametrize("task", ["depth", "pose", "tracking", "boxes", "classification"])
def test_seeds_trained_batched_end_as_seeds_trained_alone(setup, tmp_path, task, monkeypatch):  # noqa: F811
    batched = []
    train_batched = batched_seeds.train_batched

    def recording(readouts, *args):
        batched.append(len(readouts))
        return train_batched(readouts, *args)

    monkeypatch.setattr(readout_seeds, "train_batched", recording)
    settings = {"seeds": 3, "steps": STEPS}
    monkeypatch.setattr(readout_seeds, "seed_training", lambda spec, device: "batched")
    together = run_readout(setup, tmp_path / "batched", task, settings=settings)
    monkeypatch.setattr(readout_seeds, "seed_training", lambda spec, device: "one_after_another")
    alone = run_readout(setup, tmp_path / "alone", task, settings=settings)
    assert batched == [3]
    contract = load_contract(REPO_ROOT / "reports/tolerances.yaml")
    tolerance = contract.for_file(f"readout/tiny-{task}-frozen/metrics.json")
    for key in ("seed_headlines", "final_train_losses"):
        for ours, theirs in zip(together[key], alone[key], strict=True):
            assert tolerance.allows(theirs, ours), (key, ours, theirs)
    assert together["baseline"] == alone["baseline"]
    assert len(set(together["final_train_losses"])) == 3  # three seeds, three trainings


def test_batched_readouts_attend_with_a_kernel_vmap_runs():
    """xformers' attention has no batching rule: a GPU study's batched readouts (runtime.attention
    xformers) attend with SDPA; any other backend is kept."""
    from fourds.config import load_params
    from tests.conftest import REPO_ROOT

    spec = load_params(REPO_ROOT / "params.yaml").readout_spec("cpu_s", "depth", "frozen")
    on_gpu = spec.with_attention("xformers")
    assert batched_seeds.batchable(on_gpu).attention == "sdpa"
    assert batched_seeds.batchable(on_gpu).pretraining.model == spec.pretraining.model
    for backend in ("sdpa", "sdpa_efficient", "math"):
        assert batched_seeds.batchable(spec.with_attention(backend)).attention == backend
