"""Pretraining on the rendered world (pretrain.source 'world', fourds.train.world_clips): every
clip fresh, batches a function of (seed, step, rows), a resumed run ends on the same weights."""

from __future__ import annotations

import pytest
import torch

from fourds.cli import main
from fourds.config import ConfigError, load_params
from fourds.train.world_clips import (
    RENDER_CLIPS,
    WorldClips,
    WorldClipSpec,
    clip_times,
    world_clip_spec,
)
from fourds.world.draws import clip_keys
from tests.train.conftest import pretrain_command, world_pretraining, write_tiny_params

SPEC = WorldClipSpec(frames=4, stride=2, video_frames=12, size=16, supersample=2)


def masks(batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.rand(batch, 32, generator=generator).argsort(-1)
    mask = torch.ones(batch, 32, dtype=torch.bool)
    mask.scatter_(1, order[:, :8], False)
    return order[:, :8], mask


def test_world_batches_are_a_function_of_seed_step_and_rows():
    whole = WorldClips(SPEC, seed=3, steps=2, rows=range(0, 4), sample_masks=masks, device="cpu")
    first, second = list(whole)
    assert first["video"].shape == (4, 4, 16, 16, 3) and first["video"].dtype == torch.uint8
    assert not torch.equal(first["video"], second["video"])  # every step renders new clips
    assert (first["view"] == torch.tensor([0, 0, 16, 16, 0])).all()  # the whole frame
    # a process that renders rows 2-3 renders what the single process rendered there
    half = WorldClips(SPEC, seed=3, steps=2, rows=range(2, 4), sample_masks=masks, device="cpu")
    assert torch.equal(half.batch(0)["video"], first["video"][2:])
    resumed = WorldClips(SPEC, seed=3, steps=2, rows=range(0, 4), sample_masks=masks, device="cpu")
    resumed.load_state_dict(whole.state_dict() | {"step": 1})
    (again,) = list(resumed)
    assert torch.equal(again["video"], second["video"]) and torch.equal(
        again["mask"], second["mask"]
    )


def test_steps_rendered_together_are_the_steps_rendered_alone(monkeypatch):
    """Iteration renders RENDER_CLIPS clips at a time (as on a GPU; here two steps of four, then
    the last step alone): the batches `batch` gives step by step."""
    monkeypatch.setitem(RENDER_CLIPS, "cpu", 8)
    world = WorldClips(SPEC, seed=5, steps=3, rows=range(0, 4), sample_masks=masks, device="cpu")
    together = list(world)
    assert len(together) == 3 and world.state_dict() == {"step": 3}
    for step, batch in enumerate(together):
        alone = world.batch(step)
        assert all(torch.equal(batch[name], alone[name]) for name in alone)


def test_clip_windows_fit_the_video():
    times = clip_times(SPEC, clip_keys(0, 0, torch.arange(500)))
    frames = times * 12.0  # the world's frame rate
    assert frames.min() >= 0 and frames.max() <= SPEC.video_frames - 1
    assert torch.allclose(frames[:, 1:] - frames[:, :-1], torch.tensor(2.0))
    assert len(torch.unique(frames[:, 0])) == SPEC.video_frames - SPEC.span + 1


def test_the_world_source_takes_no_crops(tmp_path):
    params = write_tiny_params(tmp_path / "params.yaml", source="world")
    with pytest.raises(ConfigError, match=r"pretrain.crop_scale=\[1.0, 1.0\]"):
        load_params(params)


@pytest.mark.slow
def test_a_world_run_resumes_to_the_same_weights(tmp_path, capsys):
    """A rerun resumes from the run's step-4 checkpoint and renders steps 5-8 again: the same
    clips, so the same final weights."""
    world = {"source": "world", "crop_scale": [1.0, 1.0], "steps": 8, "checkpoint_every": 4}
    params = write_tiny_params(tmp_path / "params.yaml", **world)
    argv = pretrain_command([], params, tmp_path / "no-shards", tmp_path / "run")  # none read
    assert main(argv) == 0
    first = torch.load(tmp_path / "run/checkpoint.pt", weights_only=True)["state_dict"]
    assert main(argv) == 0
    assert "(step 4)" in capsys.readouterr().out
    again = torch.load(tmp_path / "run/checkpoint.pt", weights_only=True)["state_dict"]
    assert first.keys() == again.keys()
    assert all(torch.equal(again[name], tensor) for name, tensor in first.items())


def test_a_world_run_trains_on_clips_of_its_complexity(tmp_path):
    from fourds.train.pretrain import clip_loader

    videos = {}
    for level in ("simple", "rich"):
        spec = world_pretraining(tmp_path, level)
        assert world_clip_spec(spec).complexity == level
        loader = clip_loader(spec, None, masks, range(0, 2), torch.device("cpu"))
        videos[level] = loader.batch(0)["video"]
    assert not torch.equal(videos["simple"], videos["rich"])
