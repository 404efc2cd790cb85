"""The world's complexity levels: one table both samplers read, the standard level pinned."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from fourds.config.world_levels import MAX_BODIES, STANDARD, WORLD_LEVELS, world_level
from fourds.world import render_clip, sample_scene
from fourds.world.batch import SceneBatch, sample_scenes
from fourds.world.draws import clip_keys

# The standard level's scenes as the samplers drew them before the table existed (commit
# 3eeff3f): the corpus's world must not move. The numpy sampler's digest is the same on every
# CPU. The batched sampler's sines, cosines and logs differ in their last bits between CPU
# kernels (AVX2 and AVX-512), so its scenes are kept as arrays (drawn on an AVX2 CPU, whose
# digest matched 3eeff3f's field by field there) and compared within float32 rounding; its
# lattice, uniform draws alone, by digest. A body's catalog kind, added since, is left out
# (it is -1 in every continuous level: tests/world/test_catalog.py).
NUMPY_SCENES_DIGEST = "e5ff210800e73246"
BATCHED_SCENES = Path(__file__).with_name("standard_batched_scenes.npz")
BATCHED_LATTICE_DIGEST = "d36c56edf7b7d96e"


def _digest_value(digest, value) -> None:
    if dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            if field.name != "kind":
                _digest_value(digest, getattr(value, field.name))
    elif isinstance(value, tuple):
        for item in value:
            _digest_value(digest, item)
    elif isinstance(value, str):
        digest.update(value.encode())
    else:
        digest.update(np.asarray(value, dtype=np.float64).tobytes())


def numpy_scenes_digest(level_name: str = STANDARD, seeds: int = 40) -> str:
    digest = hashlib.sha256()
    for seed in range(seeds):
        _digest_value(
            digest, sample_scene(np.random.default_rng(seed), level=WORLD_LEVELS[level_name])
        )
    return digest.hexdigest()[:16]


def batched_scenes_digest(level_name: str = STANDARD) -> str:
    scenes = sample_scenes(clip_keys(3, 0, torch.arange(64)), level=WORLD_LEVELS[level_name])
    digest = hashlib.sha256()
    for field in dataclasses.fields(SceneBatch):
        if field.name != "kind":
            digest.update(getattr(scenes, field.name).numpy().tobytes())
    return digest.hexdigest()[:16]


def test_the_standard_level_draws_the_scenes_drawn_before_levels_existed():
    assert numpy_scenes_digest() == NUMPY_SCENES_DIGEST
    scenes = sample_scenes(clip_keys(3, 0, torch.arange(64)), level=WORLD_LEVELS[STANDARD])
    lattice = hashlib.sha256(scenes.lattice.numpy().tobytes()).hexdigest()[:16]
    assert lattice == BATCHED_LATTICE_DIGEST
    with np.load(BATCHED_SCENES) as pinned:
        assert set(pinned.files) == {f.name for f in dataclasses.fields(SceneBatch)} - {
            "kind",
            "lattice",
        }
        for name in pinned.files:
            drawn = getattr(scenes, name).numpy()
            assert drawn.dtype == pinned[name].dtype, name
            np.testing.assert_allclose(drawn, pinned[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_every_level_changes_what_both_samplers_draw():
    digests = {
        name: (numpy_scenes_digest(name, seeds=4), batched_scenes_digest(name))
        for name in WORLD_LEVELS
    }
    assert len({numpy for numpy, _ in digests.values()}) == len(WORLD_LEVELS)
    assert len({batched for _, batched in digests.values()}) == len(WORLD_LEVELS)


@pytest.mark.parametrize("name", list(WORLD_LEVELS))
def test_both_samplers_draw_a_level_from_its_table(name):
    level = WORLD_LEVELS[name]
    fewest, most = level.bodies
    numpy_scenes = [sample_scene(np.random.default_rng(seed), level=level) for seed in range(96)]
    batched = sample_scenes(clip_keys(0, 0, torch.arange(96)), level=level)

    numpy_bodies = np.array([len(scene.bodies) for scene in numpy_scenes])
    batched_bodies = (batched.shape >= 0).sum(1).numpy()
    assert numpy_bodies.max() <= most and batched_bodies.max() <= most
    assert abs(numpy_bodies.mean() - batched_bodies.mean()) < 0.5

    numpy_speeds = np.array(
        [
            np.hypot(body.velocity[0], body.velocity[2])
            for scene in numpy_scenes
            for body in scene.bodies
        ]
    )
    filled = batched.shape >= 0
    batched_speeds = torch.hypot(batched.velocity[..., 0], batched.velocity[..., 2])[filled].numpy()
    low, high = level.body_speed
    # crossers drift along the view (level.crossing_drift), so a speed exceeds its draw a little
    for speeds in (numpy_speeds, batched_speeds):
        assert speeds.min() >= low - 1e-6 and speeds.max() <= np.hypot(high, 0.3) + 1e-6
    assert abs(numpy_speeds.mean() - batched_speeds.mean()) < 0.15 * (high + low)

    spins = np.array([body.spin for scene in numpy_scenes for body in scene.bodies])
    assert np.abs(spins).max() <= level.body_spin[1]
    assert np.abs(batched.spin[filled].numpy()).max() <= level.body_spin[1]


def test_levels_grow_in_bodies_and_motion():
    means = []
    for name in ("simple", "standard", "rich"):
        scenes = sample_scenes(clip_keys(1, 0, torch.arange(128)), level=WORLD_LEVELS[name])
        filled = scenes.shape >= 0
        speed = torch.hypot(scenes.velocity[..., 0], scenes.velocity[..., 2])[filled].mean()
        means.append((filled.sum(1).float().mean().item(), speed.item()))
    assert means[0][0] < means[1][0] < means[2][0]
    assert means[0][1] < means[1][1] < means[2][1]


@pytest.mark.parametrize("name", list(WORLD_LEVELS))
def test_every_level_renders_with_ground_truth(name):
    scene = sample_scene(np.random.default_rng(3), level=WORLD_LEVELS[name])
    rendering = render_clip(scene, 3, 24, 24, 12, 1)
    assert np.isfinite(rendering.depth).all()
    assert rendering.boxes.shape == (MAX_BODIES, 3, 4)


def test_an_unknown_level_is_one_line_naming_the_levels():
    with pytest.raises(ValueError, match="unknown world complexity 'hard'.*simple.*standard.*rich"):
        world_level("hard")
