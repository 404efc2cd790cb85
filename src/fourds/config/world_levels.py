"""The world's distributions, one table: what a scene draws, at each complexity level.

Both samplers read it: `fourds.world.scene.sample_scene` (numpy, the corpus's world) and
`fourds.world.batch.sample_scenes` (torch, on any device). A `WorldLevel` holds every range a
scene is drawn from; `WORLD_LEVELS` names the levels a study can pick (`pretrain.world_complexity`,
`fourds synth --complexity`). "standard" is the world of the embedded corpus, drawn exactly as
before levels existed (tests/world/test_levels.py pins its scenes). The levels differ in what a
masked auto-encoder has to predict from what it sees, with the camera, light, palette and the
clip's classes the same at every level:

    simple      1-2 bodies, slow, nearly still in rotation, broad textures, rarely occluding
    standard    3-6 bodies at today's speeds and textures, most new bodies aimed to occlude
    rich        5-6 bodies, faster and spinning, finer textures on bodies and ground, more
                occlusion

Those three levels draw every body's shape, size, palette, texture and motion afresh: nothing
recurs from one clip to the next. The catalog levels draw them instead from a fixed catalog of
kinds, and ground and sky from a fixed catalog of places (fourds.world.catalog), with long-tailed
(Zipf) frequencies, as objects and places recur in real video:

    catalog-1k  the standard level's ranges; 1,024 body kinds and 64 places
    catalog-8k  the standard level's ranges; 8,192 body kinds and 512 places

Every range is (low, high) for a uniform draw unless its comment says otherwise. No imports
beyond the standard library: the params' checks read the level names.
"""

from __future__ import annotations

import dataclasses

Range = tuple[float, float]
MAX_BODIES = 6  # body slots of a scene batch: no level draws more bodies


@dataclasses.dataclass(frozen=True)
class CatalogSpec:
    """A world's catalog (fourds.world.catalog): `kinds` body kinds and `places` places, each
    drawn once from the level's ranges by a generator seeded with `seed`; a scene's bodies and
    place are drawn from them with chance proportional to rank^-`zipf` (rank 1 the commonest)."""

    kinds: int
    places: int
    zipf: float = 1.0
    seed: int = 0x4B1D_CA7A

    def __post_init__(self):
        if self.kinds < 1 or self.places < 1 or self.zipf < 0:
            raise ValueError(f"catalog {self}: expected kinds, places >= 1 and zipf >= 0")


@dataclasses.dataclass(frozen=True)
class WorldLevel:
    """The distributions of one complexity level (module docstring). Lengths in metres, angles
    in degrees or radians as named, speeds per second, texture frequencies in noise-lattice
    cells per metre (per unit of view direction for the sky)."""

    bodies: tuple[int, int]  # fewest and most bodies a scene draws (inclusive)
    body_speed: Range  # horizontal speed
    body_bounce: Range  # vertical oscillation amplitude
    body_spin: Range  # radians per second about the body's own axis
    body_texture: Range  # texture frequency on bodies
    occluder_share: float  # chance that a body after the first is aimed to occlude another
    ground_texture: Range = (0.3, 0.7)
    sky_texture: Range = (1.0, 2.5)
    sky_horizon: Range = (0.35, 0.95)  # each channel of the sky's horizon colour
    sky_zenith: Range = (0.15, 0.85)  # each channel of the sky's zenith colour
    palette: Range = (0.12, 0.92)  # each channel of a texture's first colour
    palette_spread: float = 0.3  # std of the second colour around the first, per channel
    palette_clip: Range = (0.05, 0.95)  # the second colour clipped into this
    sphere_radius: Range = (0.4, 0.9)
    box_half_size: Range = (0.3, 0.7)  # each of the box's three half sizes
    cylinder_radius: Range = (0.3, 0.6)
    cylinder_half_height: Range = (0.35, 0.8)
    shine: Range = (0.0, 0.5)  # specular strength of a glossy body
    glossy_share: float = 0.6  # chance that a body is glossy (else matte, shine 0)
    occlusion_time: Range = (0.2, 0.8)  # when an occluder crosses, as a share of the clip
    occlusion_gap: Range = (0.05, 0.6)  # clearance between an occluder and its target
    crossing_across: Range = (-3.0, 3.0)  # a crosser's start, sideways from the view's centre
    crossing_along: Range = (-2.5, 3.5)  # ... and along the view
    crossing_inwards: float = 0.8  # chance that a crosser heads towards the view's middle
    crossing_drift: Range = (-0.3, 0.3)  # a crosser's speed along the view
    camera_target: Range = (-0.5, 0.5)  # the target's x and z (its height is 0.5)
    camera_radius: Range = (5.0, 7.0)
    camera_height: Range = (1.5, 4.0)
    orbit_speed: Range = (0.75, 1.5)  # radians per second
    dolly_speed: Range = (1.5, 2.7)
    pan_speed: Range = (0.45, 0.9)  # radians per second
    field_of_view: Range = (50.0, 70.0)  # degrees, horizontal
    sun_elevation: Range = (25.0, 65.0)  # degrees above the horizon
    sun_intensity: Range = (0.6, 0.95)
    ambient: Range = (0.2, 0.4)
    ground_tracks: float = 4.0  # tracked ground points lie within +-this of the origin (x, z)
    catalog: CatalogSpec | None = None  # None: every body and place drawn afresh

    def __post_init__(self):
        fewest, most = self.bodies
        if not 1 <= fewest <= most <= MAX_BODIES:
            raise ValueError(f"bodies {self.bodies}: expected 1 <= fewest <= most <= {MAX_BODIES}")


WORLD_LEVELS: dict[str, WorldLevel] = {
    "simple": WorldLevel(
        bodies=(1, 2),
        body_speed=(0.2, 0.7),
        body_bounce=(0.0, 0.2),
        body_spin=(-0.8, 0.8),
        body_texture=(0.6, 1.2),
        occluder_share=0.3,
    ),
    "standard": WorldLevel(
        bodies=(3, 6),
        body_speed=(0.4, 1.4),
        body_bounce=(0.0, 0.5),
        body_spin=(-2.5, 2.5),
        body_texture=(1.2, 2.5),
        occluder_share=0.7,
    ),
    "rich": WorldLevel(
        bodies=(5, 6),
        body_speed=(0.8, 2.4),
        body_bounce=(0.0, 0.8),
        body_spin=(-4.5, 4.5),
        body_texture=(2.0, 4.0),
        occluder_share=0.85,
        ground_texture=(0.6, 1.2),
    ),
}
WORLD_LEVELS |= {
    f"catalog-{kinds // 1024}k": dataclasses.replace(
        WORLD_LEVELS["standard"], catalog=CatalogSpec(kinds=kinds, places=places)
    )
    for kinds, places in ((1024, 64), (8192, 512))
}
STANDARD = "standard"  # the embedded corpus's level


def world_level(name: str) -> WorldLevel:
    """The level called `name`.

    Raises:
        ValueError: no level has that name (the message lists the levels).
    """
    if name not in WORLD_LEVELS:
        raise ValueError(f"unknown world complexity {name!r}; expected one of {list(WORLD_LEVELS)}")
    return WORLD_LEVELS[name]
