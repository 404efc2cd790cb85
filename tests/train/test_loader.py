"""The pretraining loader: every example is a pure function of (seed, step, slot)."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from fourds.cli import main
from fourds.data.augment import ClipSampler
from fourds.train.loader import ClipExample, Slot, collate, pretrain_loader
from tests.train.conftest import pretrain_command, write_tiny_params

SEGMENTS = np.random.default_rng(0).integers(0, 256, (5, 12, 16, 16, 3), dtype=np.uint8)


def sample_masks(batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep 4 of 8 tokens at random: keep_index [batch, 4], mask bool [batch, 8]."""
    keep_index = torch.rand(batch, 8, generator=generator).argsort(1)[:, :4]
    mask = torch.ones(batch, 8, dtype=torch.bool).scatter(1, keep_index, False)
    return keep_index, mask


def example(seed: int = 0, crop_scale: tuple[float, float] = (0.5, 1.0)) -> ClipExample:
    sampler = ClipSampler(4, 2, crop_scale, (0.75, 1.333))
    return ClipExample(SEGMENTS, sampler, seed, sample_masks)


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_an_example_is_a_function_of_seed_step_and_slot():
    first = example()(Slot(3, 1))
    assert first["video"].dtype == torch.uint8 and first["video"].shape == (4, 16, 16, 3)
    assert first["keep_index"].shape == (4,) and first["mask"].shape == (8,)
    assert same(first, example()(Slot(3, 1)))  # a fresh sampler: nothing carried over
    others = [example()(Slot(3, 0)), example()(Slot(4, 1)), example(seed=1)(Slot(3, 1))]
    assert not any(torch.equal(first["video"], other["video"]) for other in others)
    assert not any(torch.equal(first["keep_index"], other["keep_index"]) for other in others)


def test_the_slots_of_a_batch_get_different_clips():
    videos = [example()(Slot(0, row))["video"] for row in range(8)]
    assert not any(torch.equal(a, b) for a, b in itertools.combinations(videos, 2))


def test_without_crops_every_video_is_a_plain_window_of_a_segment():
    for row in range(16):
        video = example(crop_scale=(1.0, 1.0))(Slot(0, row))["video"].numpy()
        plain = [
            window
            for segment in SEGMENTS
            for start in range(6)
            for window in (segment[start : start + 7 : 2], segment[start : start + 7 : 2, :, ::-1])
        ]
        assert any(np.array_equal(video, window) for window in plain), row


def test_the_loader_yields_the_examples_of_its_slots_in_order():
    make = example()
    loader = pretrain_loader(make, steps=3, rows=range(2, 4), workers=2, prefetch=2)
    batches = list(loader)
    assert len(batches) == 3
    for step, batch in enumerate(batches):
        expected = collate([make(Slot(step, row)) for row in (2, 3)])
        assert same(batch, expected), step


def test_pretraining_refuses_segments_shorter_than_its_window(tiny_shards, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    write_tiny_params(params, frame_stride=4)  # a window of 4 frames spans 13 > 12
    raw = params.read_text().replace("pretrain_frames: 12", "pretrain_frames: 16")
    params.write_text(raw)
    assert main(pretrain_command([], params, tiny_shards, tmp_path / "run")) == 2
    error = capsys.readouterr().err
    assert "hold 12-frame segments" in error and "needs 13" in error
