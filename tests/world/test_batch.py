"""The batched world (fourds.world.draws, .batch, .batch_render): device-independent draws,
scenes from the corpus's distributions, and frames and ground truth that match the numpy
renderer's for the same scene."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fourds.config.world_levels import MAX_BODIES
from fourds.world import render_clip, sample_scene
from fourds.world.batch import SceneBatch, sample_scenes
from fourds.world.batch_render import render_batch
from fourds.world.draws import CORPUS, MASK32, Draws, clip_keys, hash32
from fourds.world.scene import CAMERA_MOTIONS

FRAMES, SIZE, FPS = 6, 32, 12.0


def python_hash32(value: int) -> int:
    """hash32 in Python's unbounded integers: the oracle for the int64 tensor version."""
    value &= MASK32
    value ^= value >> 16
    value = (value * 0x7FEB352D) & MASK32
    value ^= value >> 15
    value = (value * 0x846CA68B) & MASK32
    return value ^ (value >> 16)


def test_the_hash_is_exact_integer_arithmetic():
    values = [0, 1, 2, 12345, 2**31 - 1, 2**31, 2**32 - 1, 0xDEADBEEF]
    hashed = hash32(torch.tensor(values, dtype=torch.int64)).tolist()
    assert hashed == [python_hash32(value) for value in values]


def test_draws_are_a_function_of_the_clip_key_alone():
    keys = clip_keys(7, 3, torch.arange(6))
    first, again = Draws(keys), Draws(keys[2:4])
    assert torch.equal(first.uniform(5)[2:4], again.uniform(5))
    values = Draws(clip_keys(7, 3, torch.arange(2000))).uniform(8)
    assert 0.0 <= values.min() and values.max() < 1.0
    assert abs(values.mean().item() - 0.5) < 0.01  # 16,000 draws: the mean's sd is 0.0023
    assert not torch.equal(Draws(clip_keys(8, 3, torch.arange(6))).uniform(5), first.uniform(5))


def test_pretraining_clips_and_corpus_videos_have_keys_of_their_own():
    index = torch.arange(4096)
    pretraining = {tuple(key) for step in range(3) for key in clip_keys(0, step, index).tolist()}
    corpus = {
        tuple(key) for split in range(3) for key in clip_keys(0, split, index, CORPUS).tolist()
    }
    assert len(pretraining) == len(corpus) == 3 * 4096 and not pretraining & corpus


@pytest.fixture(scope="module")
def numpy_scenes():
    return [
        sample_scene(np.random.default_rng(seed), CAMERA_MOTIONS[seed % 4]) for seed in range(4)
    ]


def test_the_batched_renderer_draws_the_numpy_renderers_frames_and_truth(numpy_scenes):
    """Same scenes, both renderers: float32 against float64 moves a colour by at most one
    level and the geometry by float32 rounding (the stated tolerance of the batched world)."""
    times = (torch.arange(FRAMES) / FPS).expand(len(numpy_scenes), -1)
    batch = render_batch(SceneBatch.from_scenes(numpy_scenes), times, SIZE)
    for index, scene in enumerate(numpy_scenes):
        ours, theirs = batch.clip(index), render_clip(scene, FRAMES, SIZE, SIZE, FPS)
        levels = np.abs(ours.video.astype(int) - theirs.video.astype(int))
        assert levels.max() <= 1 and (levels > 0).mean() < 1e-3
        np.testing.assert_allclose(ours.depth, theirs.depth, rtol=1e-4)
        assert np.mean(ours.instances != theirs.instances) < 1e-3
        np.testing.assert_allclose(ours.tracks, theirs.tracks, atol=1e-3)
        assert np.mean(ours.visible != theirs.visible) < 0.01
        assert np.array_equal(ours.box_visible, theirs.box_visible)
        np.testing.assert_array_equal(ours.boxes, theirs.boxes)
        np.testing.assert_allclose(ours.extrinsics, theirs.extrinsics, atol=1e-5)
        np.testing.assert_allclose(ours.intrinsics, theirs.intrinsics, rtol=1e-6)
        assert ours.label == theirs.label


def test_sampled_scenes_follow_the_corpus_world():
    keys = clip_keys(0, 0, torch.arange(256))
    scenes = sample_scenes(keys)
    bodies = (scenes.shape >= 0).sum(1).float()
    numpy_bodies = [len(sample_scene(np.random.default_rng(seed)).bodies) for seed in range(256)]
    assert abs(bodies.mean().item() - np.mean(numpy_bodies)) < 0.3
    assert bodies.min() >= 2 and bodies.max() <= MAX_BODIES
    # bodies fill the first slots; every track's body exists
    filled = scenes.shape >= 0
    assert torch.equal(filled, torch.sort(filled.int(), dim=1, descending=True).values.bool())
    owner = scenes.track_body
    assert (owner <= bodies[:, None]).all()
    counts = torch.bincount(scenes.motion, minlength=4)
    assert counts.min() > 40  # each motion about a quarter of 256
    # a clip's scene depends on its key alone, not on the batch it is drawn in
    part = sample_scenes(keys[10:14])
    assert torch.equal(part.start, scenes.start[10:14]) and torch.equal(
        part.lattice, scenes.lattice[10:14]
    )
    given = sample_scenes(keys[:8], motion=torch.full((8,), 2))
    assert given.labels() == ["pan"] * 8 and (given.pan != 0).all() and (given.dolly == 0).all()


def test_sampled_scenes_render_with_consistent_truth():
    scenes = sample_scenes(clip_keys(1, 0, torch.arange(4)))
    times = (torch.arange(FRAMES) / FPS).expand(4, -1)
    clips = render_batch(scenes, times, SIZE)
    assert clips.video.shape == (4, FRAMES, SIZE, SIZE, 3) and clips.video.dtype == torch.uint8
    assert clips.video.float().std() > 20  # textured, shaded frames, not a flat colour
    assert (clips.depth > 0).all() and torch.isfinite(clips.depth).all()
    for body in range(MAX_BODIES):  # a body's box holds exactly its visible pixels' extent
        seen = (clips.instances == body + 1).flatten(2).any(-1)
        assert torch.equal(seen, clips.box_visible[:, body])
    video_only = render_batch(scenes, times, SIZE, truth=False)
    assert torch.equal(video_only.video, clips.video) and video_only.depth is None


def test_sampled_scenes_show_their_tracks_as_the_corpus_world_does():
    """The share of tracked points seen at some time, over 16 scenes of each world (about 0.5)."""
    times = (torch.arange(FRAMES) / FPS).expand(16, -1)
    clips = render_batch(sample_scenes(clip_keys(1, 0, torch.arange(16))), times, SIZE)
    numpy_clips = [
        render_clip(sample_scene(np.random.default_rng(seed)), FRAMES, SIZE, SIZE, FPS)
        for seed in range(16)
    ]
    seen = clips.visible.any(-1).float().mean().item()
    assert abs(seen - np.mean([clip.visible.any(-1).mean() for clip in numpy_clips])) < 0.1
