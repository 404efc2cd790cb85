"""Checkpoints: a SIGKILLed run resumes to bitwise-identical weights; saves are crash-safe;
a non-finite loss stops the run and keeps the last good checkpoint."""

from __future__ import annotations

import dataclasses
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from fourds.cli import main
from fourds.config import load_params
from fourds.models.mae import MaskedAutoencoder
from fourds.records import EXECUTION_RECORD
from fourds.train import checkpoint, pretrain
from fourds.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from fourds.train.distributed import DistEnv
from fourds.train.pretrain import run_fingerprint
from tests.conftest import REPO_ROOT
from tests.train.conftest import CLI, pretrain_command, run_pretrain, write_tiny_params

STEPS = 80  # 40 or more after the last checkpoint the kill may follow: the run outlasts it


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["state_dict"]


def checkpoint_steps(out: Path) -> list[int]:
    return sorted(int(path.name[5:]) for path in out.glob("resume/*/step-*"))


@pytest.mark.slow
def test_a_run_killed_at_an_arbitrary_step_resumes_to_the_same_weights(tiny_shards, tmp_path):
    """A run SIGKILLed somewhere after its checkpoint at step 20, 30 or 40 (older ones
    pruned), rerun: it resumes and ends with the weights and curves of an uninterrupted run.
    Each run is a process of its own, as a stage's is: a run started in this test process
    forks its memory check from it, and a fork from a process with other threads running
    can hang on a lock one of them held."""
    params = write_tiny_params(
        tmp_path / "params.yaml",
        steps=STEPS,
        log_every=5,
        checkpoint_every=10,
        keep_checkpoints=2,
        heldout_every=10,
    )
    reference = tmp_path / "uninterrupted"
    run_pretrain(CLI, params, tiny_shards, reference)

    interrupted = tmp_path / "interrupted"
    command = pretrain_command(CLI, params, tiny_shards, interrupted)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wanted = random.Random().choice([20, 30, 40])
    deadline = time.monotonic() + 120
    while not any(step >= wanted for step in checkpoint_steps(interrupted)):
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    time.sleep(random.Random().uniform(0.0, 0.2))  # somewhere after that checkpoint
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not (interrupted / "checkpoint.pt").exists()
    killed_after = max(checkpoint_steps(interrupted))

    log = run_pretrain(CLI, params, tiny_shards, interrupted)
    assert f"(step {killed_after})" in log
    resumed, uninterrupted = weights(interrupted), weights(reference)
    assert resumed.keys() == uninterrupted.keys()
    for name, tensor in uninterrupted.items():
        assert torch.equal(resumed[name], tensor), name
    for curve in ("loss.csv", "heldout.csv"):
        assert (interrupted / curve).read_text() == (reference / curve).read_text(), curve


def test_a_checkpoint_of_other_code_is_not_resumed(tiny_shards, tmp_path, monkeypatch, capsys):
    """The resume fingerprint covers the code: a rerun of the same code resumes from the last
    checkpoint, one of other code (another `code_digest`) starts afresh beside it."""
    params = write_tiny_params(tmp_path / "params.yaml", steps=8, checkpoint_every=4)
    out = tmp_path / "run"
    argv = pretrain_command([], params, tiny_shards, out)
    assert main(argv) == 0  # keeps its step-4 checkpoint under resume/<fingerprint>/
    assert main(argv) == 0
    assert "(step 4)" in capsys.readouterr().out and resumed_from(out) == 4

    monkeypatch.setattr(pretrain, "code_digest", lambda: "the digest of other code")
    assert main(argv) == 0
    assert "resuming" not in capsys.readouterr().out and resumed_from(out) == 0
    assert len(list(out.glob("resume/*/step-00000004"))) == 2  # each fingerprint its own


def resumed_from(out: Path) -> int:
    return yaml.safe_load((out / EXECUTION_RECORD).read_text())["resumed_from_step"]


def tiny_model() -> tuple[MaskedAutoencoder, torch.optim.Optimizer]:
    from fourds.config import ModelConfig
    from fourds.models.vit import VideoViT
    from tests.conftest import tiny_mae_config

    cfg = ModelConfig(32, 1, 2, 64, (2, 8, 8), False, False, True)
    model = MaskedAutoencoder(VideoViT(cfg, 4, 16), tiny_mae_config())
    return model, torch.optim.AdamW(model.parameters())


def train_one_step(model: MaskedAutoencoder, optimizer: torch.optim.Optimizer) -> None:
    keep, mask = model.sample_masks(2, torch.Generator().manual_seed(0))
    loss, _ = model(torch.rand(2, 4, 16, 16, 3), keep, mask)
    loss.backward()
    optimizer.step()


def test_a_crash_during_a_save_leaves_the_previous_checkpoint_as_the_latest(tmp_path, monkeypatch):
    model, optimizer = tiny_model()
    train_one_step(model, optimizer)
    env = DistEnv()
    good = save_checkpoint(tmp_path, 10, model, optimizer, {"curve": []}, {"n": 1}, env, keep=3)
    saved = {name: tensor.clone() for name, tensor in model.state_dict().items()}

    def crash(state_dict, checkpoint_id, **options):
        (Path(checkpoint_id) / "__0_0.distcp").write_bytes(b"half a shard")
        raise OSError("disk full")

    train_one_step(model, optimizer)
    monkeypatch.setattr(checkpoint.dcp, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 20, model, optimizer, {"curve": []}, {"n": 2}, env, keep=3)
    assert latest_checkpoint(tmp_path) == good  # the half-written step 20 is never picked
    (tmp_path / "step-00000030").mkdir()  # a directory without trainer.json is not complete
    assert latest_checkpoint(tmp_path) == good

    fresh, fresh_optimizer = tiny_model()
    trainer, rank_state = load_checkpoint(good, fresh, fresh_optimizer, env)
    assert trainer["step"] == 10 and rank_state == {"n": 1}
    for name, tensor in fresh.state_dict().items():
        assert torch.equal(tensor, saved[name]), name


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tiny_shards, tmp_path, monkeypatch, capsys
):
    params = write_tiny_params(tmp_path / "params.yaml", steps=40, log_every=2, checkpoint_every=4)
    forward = MaskedAutoencoder.forward
    calls = []

    def diverging(self, video, *args):
        loss, prediction = forward(self, video, *args)
        if video.device.type == "meta" or not torch.is_grad_enabled():
            return loss, prediction  # the FLOP count or the held-out curve, not a training step
        calls.append(1)
        return (loss * float("nan") if len(calls) >= 11 else loss), prediction

    monkeypatch.setattr(MaskedAutoencoder, "forward", diverging)
    out = tmp_path / "run"
    argv = pretrain_command([], params, tiny_shards, out)
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "the loss became nan between steps 11 and 12" in error
    assert "step-00000008" in error and "lower pretrain.lr" in error.lower()
    assert checkpoint_steps(out) == [8]  # kept; nothing was saved after the loss went bad
    assert not (out / "checkpoint.pt").exists()


def test_export_writes_a_checkpoint_as_the_weights_file_readouts_load(
    tiny_shards, tmp_path, capsys
):
    from fourds.config import load_params
    from fourds.models.factory import scale_mae
    from fourds.models.weights import load_encoder

    params_path = write_tiny_params(tmp_path / "params.yaml", steps=8, checkpoint_every=4)
    out = tmp_path / "run"
    assert main(pretrain_command([], params_path, tiny_shards, out)) == 0
    # The loader's worker threads are stopped before the stage returns (a process leaving
    # with them running can abort in C++ teardown).
    workers = ("_apply_udf", "_sort_worker", "_populate_queue")
    assert not [t.name for t in threading.enumerate() if any(w in t.name for w in workers)]
    (step_4,) = out.glob("resume/*/step-00000004")
    exported = tmp_path / "step-4.pt"
    export = ["export", "--params", str(params_path), "--scale", "tiny"]
    assert main([*export, "--checkpoint", str(step_4), "--out", str(exported)]) == 0

    params = load_params(params_path)
    model = scale_mae(params.pretraining("tiny"))
    load_checkpoint(step_4, model, torch.optim.AdamW(model.parameters()), DistEnv())
    encoder = load_encoder(exported)
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(tensor, model.encoder.state_dict()[name]), name
    final = load_encoder(out / "checkpoint.pt").state_dict()
    assert not torch.equal(final["pos_embed"], encoder.state_dict()["pos_embed"])  # step 4 != 8

    assert main([*export, "--checkpoint", str(out), "--out", str(tmp_path / "x.pt")]) == 2
    assert "not a complete checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("section", "changes"),
    [
        ("curate", {"pretrain_frames": 16}),
        ("pretrain", {"frame_stride": 1}),
        ("pretrain", {"crop_scale": (1.0, 1.0)}),
        ("pretrain", {"crop_aspect": (1.0, 1.0)}),
    ],
)
def test_a_run_resumes_only_with_the_same_clip_sampling(section, changes):
    params = load_params(REPO_ROOT / "params.yaml")
    changed = dataclasses.replace(getattr(params, section), **changes)
    other = dataclasses.replace(params, **{section: changed})
    assert run_fingerprint(other.pretraining("cpu_s"), []) != run_fingerprint(
        params.pretraining("cpu_s"), []
    )
    workers = dataclasses.replace(params.pretrain, loader_workers=3)  # execution only
    same = dataclasses.replace(params, pretrain=workers)
    assert run_fingerprint(same.pretraining("cpu_s"), []) == run_fingerprint(
        params.pretraining("cpu_s"), []
    )
    curate_workers = dataclasses.replace(params.curate, workers=5)  # execution only
    same = dataclasses.replace(params, curate=curate_workers)
    assert run_fingerprint(same.pretraining("cpu_s"), []) == run_fingerprint(
        params.pretraining("cpu_s"), []
    )
