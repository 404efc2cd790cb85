"""The catalog of a catalog world: body kinds and places that recur from clip to clip.

In the continuous levels every body's shape, size, palette, texture and motion is a fresh draw,
so once a model knows the generic priors nothing more of a masked patch can be learned. A
catalog world draws each body's kind, and each scene's place, from a fixed catalog instead:

    a kind    a shape and its proportions, a texture (two colours, a frequency and an offset
              into the catalog's own noise lattice: the pattern is the kind's), a shine, and a
              motion habit (speed, bounce, spin and its axis); a body of a kind takes all of
              these, and draws only where it starts and which way it heads;
    a place   the ground's and the sky's textures;
    lattice   one noise table every scene of the world samples (a scene of a continuous level
              draws its own).

Kinds and places are drawn once from the level's ranges (fourds.config.world_levels) by a
generator seeded with the catalog's pinned seed, so the catalog is the same on every machine and
in both samplers (fourds.world.scene reads the float64 arrays, fourds.world.batch their float32
copies on its device). Scenes draw the kind of rank r (1 the commonest) with chance proportional
to r^-zipf, and places likewise: a few kinds are everywhere and most are rare, as in real video,
so a larger model can store more of the tail. What a kind takes to draw, about 350 bits (shape,
proportions, colours, texture frequency and offset, shine and motion at about 6 bits a number,
and some 30 lattice values of its pattern at 8 bits), puts catalog-1k's kinds at about 0.4 Mbit
and catalog-8k's at about 3 Mbit, against some 2 bits a parameter a model can store.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch

from fourds.config.world_levels import CatalogSpec, WorldLevel
from fourds.world.noise import LATTICE_SIZE

SHAPE_COUNT = 3  # fourds.world.scene.SHAPES: sphere, box, cylinder


@dataclasses.dataclass(frozen=True, eq=False)
class Catalog:
    """K kinds and P places (float64 arrays unless named otherwise).

    Kinds: shape [K] int64 (index into fourds.world.scene.SHAPES), half_size [K, 3], colors
    [K, 2, 3], frequency [K], offset [K, 3], shine [K], speed [K], bounce [K], spin [K], axis
    [K, 3] (unit). Places: ground_colors, sky_colors [P, 2, 3] (the sky's horizon and zenith),
    ground_frequency, sky_frequency [P], ground_offset, sky_offset [P, 3]. lattice
    [LATTICE_SIZE**3] in [0, 1]. kind_cdf [K], place_cdf [P]: the Zipf frequencies' running sums
    (the last is 1).
    """

    shape: np.ndarray
    half_size: np.ndarray
    colors: np.ndarray
    frequency: np.ndarray
    offset: np.ndarray
    shine: np.ndarray
    speed: np.ndarray
    bounce: np.ndarray
    spin: np.ndarray
    axis: np.ndarray
    ground_colors: np.ndarray
    ground_frequency: np.ndarray
    ground_offset: np.ndarray
    sky_colors: np.ndarray
    sky_frequency: np.ndarray
    sky_offset: np.ndarray
    lattice: np.ndarray
    kind_cdf: np.ndarray
    place_cdf: np.ndarray

    @property
    def kinds(self) -> int:
        return len(self.shape)

    def draw_kind(self, rng: np.random.Generator) -> int:
        """A kind drawn by its Zipf frequency (one uniform of `rng`)."""
        return _rank(self.kind_cdf, rng.random())

    def draw_place(self, rng: np.random.Generator) -> int:
        """A place drawn by its Zipf frequency (one uniform of `rng`)."""
        return _rank(self.place_cdf, rng.random())

    def tensors(self, device: torch.device | str) -> dict[str, torch.Tensor]:
        """Every array as a float32 tensor on `device` (shape int64), cached per device."""
        return _tensors(self, str(torch.device(device)))


def _rank(cdf: np.ndarray, uniform: float) -> int:
    return min(int(np.searchsorted(cdf, uniform, side="right")), len(cdf) - 1)


def zipf_cdf(count: int, exponent: float) -> np.ndarray:
    """[count] running sums of chances proportional to rank^-exponent (rank 1 first)."""
    weights = np.arange(1, count + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights / weights.sum())
    cdf[-1] = 1.0
    return cdf


def _color_pairs(rng: np.random.Generator, count: int, level: WorldLevel) -> np.ndarray:
    """[count, 2, 3] palette pairs as fourds.world.scene draws a texture's colours."""
    first = rng.uniform(*level.palette, size=(count, 3))
    second = first + rng.normal(0.0, level.palette_spread, size=(count, 3))
    return np.stack([first, np.clip(second, *level.palette_clip)], axis=1)


def _half_sizes(rng: np.random.Generator, shape: np.ndarray, level: WorldLevel) -> np.ndarray:
    """[K, 3] half sizes of kinds of `shape` [K] from the level's size ranges."""
    count = len(shape)
    sphere = np.repeat(rng.uniform(*level.sphere_radius, size=(count, 1)), 3, axis=1)
    box = rng.uniform(*level.box_half_size, size=(count, 3))
    radius = rng.uniform(*level.cylinder_radius, size=count)
    half_height = rng.uniform(*level.cylinder_half_height, size=count)
    cylinder = np.stack([radius, half_height, radius], axis=1)
    return np.where((shape == 0)[:, None], sphere, np.where((shape == 1)[:, None], box, cylinder))


def build_catalog(level: WorldLevel) -> Catalog:
    """The catalog of `level` (level.catalog must be set), drawn from its ranges."""
    spec: CatalogSpec = level.catalog
    rng = np.random.default_rng(spec.seed)
    kinds, places = spec.kinds, spec.places
    shape = rng.integers(SHAPE_COUNT, size=kinds)
    glossy = rng.random(kinds) < level.glossy_share
    axis = rng.normal(size=(kinds, 3))
    return Catalog(
        shape=shape,
        half_size=_half_sizes(rng, shape, level),
        colors=_color_pairs(rng, kinds, level),
        frequency=rng.uniform(*level.body_texture, size=kinds),
        offset=rng.uniform(0.0, LATTICE_SIZE, size=(kinds, 3)),
        shine=np.where(glossy, rng.uniform(*level.shine, size=kinds), 0.0),
        speed=rng.uniform(*level.body_speed, size=kinds),
        bounce=rng.uniform(*level.body_bounce, size=kinds),
        spin=rng.uniform(*level.body_spin, size=kinds),
        axis=axis / np.linalg.norm(axis, axis=1, keepdims=True),
        ground_colors=_color_pairs(rng, places, level),
        ground_frequency=rng.uniform(*level.ground_texture, size=places),
        ground_offset=rng.uniform(0.0, LATTICE_SIZE, size=(places, 3)),
        sky_colors=np.stack(
            [
                rng.uniform(*level.sky_horizon, size=(places, 3)),
                rng.uniform(*level.sky_zenith, size=(places, 3)),
            ],
            axis=1,
        ),
        sky_frequency=rng.uniform(*level.sky_texture, size=places),
        sky_offset=rng.uniform(0.0, LATTICE_SIZE, size=(places, 3)),
        lattice=rng.random(LATTICE_SIZE**3),
        kind_cdf=zipf_cdf(kinds, spec.zipf),
        place_cdf=zipf_cdf(places, spec.zipf),
    )


@functools.cache
def catalog_of(level: WorldLevel) -> Catalog:
    """`build_catalog(level)`, built once per process."""
    return build_catalog(level)


@functools.cache
def _tensors(catalog: Catalog, device: str) -> dict[str, torch.Tensor]:
    def tensor(name: str) -> torch.Tensor:
        value = getattr(catalog, name)
        dtype = torch.int64 if name == "shape" else torch.float32
        return torch.as_tensor(value, dtype=dtype, device=device)

    return {field.name: tensor(field.name) for field in dataclasses.fields(catalog)}
