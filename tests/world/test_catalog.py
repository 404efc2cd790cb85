"""The catalog world: kinds and places fixed by a seed, drawn by Zipf frequencies, the same
catalog in both samplers, and the continuous levels untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fourds.config.world_levels import WORLD_LEVELS, CatalogSpec
from fourds.world import render_clip, sample_scene
from fourds.world.batch import sample_scenes
from fourds.world.catalog import build_catalog, catalog_of, zipf_cdf
from fourds.world.draws import clip_keys
from fourds.world.scene import SHAPES

CATALOG = "catalog-1k"


def test_the_catalog_is_fixed_by_its_seed_and_drawn_from_the_levels_ranges():
    level = WORLD_LEVELS[CATALOG]
    first, again = build_catalog(level), build_catalog(level)
    for name in ("shape", "half_size", "colors", "frequency", "offset", "speed", "lattice"):
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    assert first.kinds == level.catalog.kinds == 1024
    assert len(first.ground_frequency) == level.catalog.places == 64
    low, high = level.body_speed
    assert (first.speed >= low).all() and (first.speed < high).all()
    assert set(np.unique(first.shape)) == {0, 1, 2}
    other = build_catalog(
        WORLD_LEVELS["standard"].__class__(
            **{**level.__dict__, "catalog": CatalogSpec(kinds=1024, places=64, seed=1)}
        )
    )
    assert not np.array_equal(first.colors, other.colors)


def test_zipf_frequencies_fall_as_a_power_of_rank():
    cdf = zipf_cdf(100, 1.0)
    chances = np.diff(cdf, prepend=0.0)
    assert cdf[-1] == 1.0
    assert chances[0] / chances[9] == pytest.approx(10.0)
    assert np.allclose(np.diff(zipf_cdf(10, 0.0), prepend=0.0), 0.1)


def test_numpy_bodies_are_catalog_kinds_drawn_by_their_frequency():
    level = WORLD_LEVELS[CATALOG]
    catalog = catalog_of(level)
    scenes = [sample_scene(np.random.default_rng(seed), level=level) for seed in range(150)]
    bodies = [body for scene in scenes for body in scene.bodies]
    for body in bodies:
        kind = body.kind
        assert body.shape == SHAPES[catalog.shape[kind]]
        assert np.array_equal(body.half_size, catalog.half_size[kind])
        assert np.array_equal(body.texture.colors, catalog.colors[kind])
        assert body.spin == catalog.spin[kind] and body.shine == catalog.shine[kind]
        assert np.hypot(body.velocity[0], body.velocity[2]) >= catalog.speed[kind] - 1e-9
    kinds = np.array([body.kind for body in bodies])
    commonest = np.mean(kinds == 0)
    expected = catalog.kind_cdf[0]  # 1 / H(1024) = 0.133
    assert abs(commonest - expected) < 0.05
    assert len(np.unique(kinds)) < len(kinds) / 2  # kinds recur
    for scene in scenes:  # every texture samples the catalog's lattice
        assert scene.lattice.values is catalog.lattice


def test_batched_bodies_and_places_are_the_same_catalogs():
    level = WORLD_LEVELS[CATALOG]
    catalog = catalog_of(level)
    scenes = sample_scenes(clip_keys(5, 0, torch.arange(256)), level=level)
    filled = scenes.shape >= 0
    kind = scenes.kind[filled]
    assert (kind >= 0).all()
    as_float = {name: torch.as_tensor(getattr(catalog, name), dtype=torch.float32)
                for name in ("half_size", "colors", "spin", "frequency")}  # fmt: skip
    assert torch.equal(scenes.half_size[filled], as_float["half_size"][kind])
    assert torch.equal(scenes.body_colors[filled], as_float["colors"][kind])
    assert torch.equal(scenes.spin[filled], as_float["spin"][kind])
    assert torch.equal(scenes.body_frequency[filled], as_float["frequency"][kind])
    assert torch.equal(scenes.shape[filled], torch.as_tensor(catalog.shape)[kind])
    assert abs((kind == 0).float().mean().item() - catalog.kind_cdf[0]) < 0.05
    ground = torch.as_tensor(catalog.ground_frequency, dtype=torch.float32)
    assert torch.isin(scenes.ground_frequency, ground).all()
    assert len(torch.unique(scenes.ground_frequency)) < 64  # places recur
    assert torch.equal(scenes.lattice[0], torch.as_tensor(catalog.lattice, dtype=torch.float32))


@pytest.mark.parametrize("name", ["simple", "standard", "rich"])
def test_continuous_levels_draw_no_kind(name):
    level = WORLD_LEVELS[name]
    assert level.catalog is None
    scene = sample_scene(np.random.default_rng(0), level=level)
    assert {body.kind for body in scene.bodies} == {-1}
    assert (sample_scenes(clip_keys(0, 0, torch.arange(8)), level=level).kind == -1).all()


def test_a_catalog_scene_renders_with_ground_truth():
    scene = sample_scene(np.random.default_rng(1), level=WORLD_LEVELS["catalog-8k"])
    rendering = render_clip(scene, 3, 24, 24, 12, 1)
    assert np.isfinite(rendering.depth).all() and rendering.video.std() > 0
