"""Procedural 4D scenes: what is in the world and how it moves.

A scene is a ground plane (y = 0, y points up), a sky dome that closes the world (so every
pixel has a finite depth), rigid bodies (spheres, boxes and cylinders; 3-6 at the standard
complexity), each with its own
translation, bounce and rotation about its own axis, a sun (direction, intensity, ambient
light) and a camera whose motion type (orbit, dolly, pan or static) is the clip's label. Bodies
start in front of the camera and move across its initial view, at different depths, so they
pass in front of one another; they keep clear of each other and of the camera.

Appearance is made for masked autoencoding: every surface carries a smooth, low-frequency
texture (fractal value noise, fourds.world.noise) whose two colours all surfaces draw from the
same palette, so colour says little about what or how far a surface is; shading with cast
shadows (fourds.world.render) carries the shape and layout. The scene also fixes the surface
points whose 2D tracks are ground truth. Everything is a pure function of a
`numpy.random.Generator`, so a seed fixes the whole clip, and every range it draws from is a
`WorldLevel`'s (fourds.config.world_levels: one table for this sampler and the batched one). A
catalog level's bodies are kinds of its catalog and its ground and sky a place of it
(fourds.world.catalog), all textures sampling the catalog's lattice.

Camera convention (OpenCV): x right, y down, z forward; extrinsics map world to camera.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from fourds.config.world_levels import STANDARD, WORLD_LEVELS, WorldLevel
from fourds.world.catalog import Catalog, catalog_of
from fourds.world.noise import LATTICE_SIZE, Lattice

DOME_RADIUS = 30.0
SHAPES = ("sphere", "box", "cylinder")
CAMERA_MOTIONS = ("orbit", "dolly", "pan", "static")
PLACEMENT_ATTEMPTS = 30  # draws per body before the scene makes do with fewer bodies
CLIP_SECONDS = 3.0  # bodies keep clear of each other and of the camera this long
FRAME_RATE = 12  # frames per second of the corpus's videos and of rendered pretraining clips
CAMERA_CLEARANCE = 1.0  # metres between the camera and any body's bounding sphere
TRACKS_PER_CLIP = 64  # surface points tracked per clip ...
GROUND_TRACKS = 16  # ... of which on the ground; the rest spread over the bodies


def _dot3(a: np.ndarray, b: np.ndarray) -> float:
    """Dot product of two 3-vectors, summed in a fixed order (see fourds.world.render)."""
    return float(a[0]) * float(b[0]) + float(a[1]) * float(b[1]) + float(a[2]) * float(b[2])


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / math.sqrt(_dot3(vector, vector))


def axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """[3, 3] rotation by `angle` radians about the unit `axis` (Rodrigues, scalar arithmetic)."""
    c, s = math.cos(angle), math.sin(angle)
    x, y, z = (float(v) for v in axis)
    return np.array(
        [
            [c + x * x * (1 - c), x * y * (1 - c) - z * s, x * z * (1 - c) + y * s],
            [y * x * (1 - c) + z * s, c + y * y * (1 - c), y * z * (1 - c) - x * s],
            [z * x * (1 - c) - y * s, z * y * (1 - c) + x * s, c + z * z * (1 - c)],
        ]
    )


@dataclasses.dataclass(frozen=True)
class Texture:
    """A smooth colour pattern: fractal value noise (fourds.world.noise) of surface coordinates
    times `frequency` plus `offset`, mapped linearly onto the ramp colors[0] -> colors[1].

    Surface coordinates are body coordinates for bodies (the pattern moves with the body),
    world (x, y, z) for the ground and the unit view direction for the sky.
    """

    colors: np.ndarray  # [2, 3] in [0, 1]
    frequency: float  # lattice cells per metre (per unit of direction for the sky)
    offset: np.ndarray  # [3] lattice cells, so that surfaces sample different parts of it


@dataclasses.dataclass(frozen=True)
class Light:
    """A distant light (a sun) that casts shadows, plus ambient light that reaches everywhere."""

    direction: np.ndarray  # [3] unit vector from surfaces towards the light (world)
    intensity: float  # direct light on a surface facing the light
    ambient: float


@dataclasses.dataclass(frozen=True)
class Body:
    """A textured rigid body.

    Its surface in body coordinates: sphere |p| = r with half_size (r, r, r); box |p_k| <=
    half_size[k]; cylinder about the body's y axis, radius half_size[0], half height
    half_size[1]. The texture is a function of body coordinates, so it moves with the body.
    """

    shape: str
    half_size: np.ndarray  # [3] metres
    start: np.ndarray  # [3] centre at t = 0 (metres)
    velocity: np.ndarray  # [3] metres per second (horizontal)
    bounce: float  # vertical oscillation amplitude (metres)
    axis: np.ndarray  # [3] unit rotation axis (world)
    spin: float  # radians per second about `axis`
    texture: Texture
    shine: float  # strength of the specular highlight (0: matte)
    kind: int = -1  # its kind in the world's catalog (fourds.world.catalog); -1: none

    @property
    def reach(self) -> float:
        """Radius of the body's bounding sphere (metres)."""
        return math.sqrt(_dot3(self.half_size, self.half_size))

    def center(self, time: float) -> np.ndarray:
        position = self.start + self.velocity * time
        position[1] = self.start[1] + self.bounce * abs(math.sin(2.0 * time))
        return position

    def rotation(self, time: float) -> np.ndarray:
        """Body-to-world rotation [3, 3] at `time` (columns: the body axes in world)."""
        return axis_rotation(self.axis, self.spin * time)


@dataclasses.dataclass(frozen=True)
class CameraPath:
    """The camera: an eye around `target` that orbits, dollies, pans or stays still."""

    motion: str  # one of CAMERA_MOTIONS
    target: np.ndarray  # [3]
    radius: float
    height: float
    angle0: float
    angular_speed: float  # orbit: radians per second around the target
    dolly: float  # dolly: metres per second backwards along the view direction
    pan: float  # pan: radians per second the view turns about the vertical
    fov_degrees: float

    def eye(self, time: float) -> np.ndarray:
        """Camera centre [3] in world coordinates at `time`."""
        world_to_camera = self.extrinsics(time)
        rotation, translation = world_to_camera[:3, :3], world_to_camera[:3, 3]
        return -np.array([_dot3(rotation[:, k], translation) for k in range(3)])

    def extrinsics(self, time: float) -> np.ndarray:
        """World-to-camera matrix [4, 4] at `time` (OpenCV axes)."""
        angle = self.angle0 + self.angular_speed * time
        eye = self.target + np.array(
            [self.radius * math.cos(angle), self.height, self.radius * math.sin(angle)]
        )
        forward = _unit(self.target - eye)
        eye = eye - forward * (self.dolly * time)  # dolly: along the view, which stays fixed
        forward = axis_rotation(np.array([0.0, 1.0, 0.0]), self.pan * time) @ forward
        right = _unit(np.cross(forward, np.array([0.0, 1.0, 0.0])))
        down = np.cross(forward, right)
        rotation = np.stack([right, down, forward])  # rows: camera axes in world coordinates
        world_to_camera = np.eye(4)
        world_to_camera[:3, :3] = rotation
        world_to_camera[:3, 3] = [-_dot3(row, eye) for row in rotation]
        return world_to_camera

    def intrinsics(self, height: int, width: int) -> np.ndarray:
        """Pinhole matrix [3, 3] in pixels for an image of `height` x `width`."""
        focal = 0.5 * width / math.tan(math.radians(self.fov_degrees) / 2.0)
        return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


@dataclasses.dataclass(frozen=True)
class Scene:
    """Everything needed to render one clip and its ground truth."""

    bodies: tuple[Body, ...]
    camera: CameraPath
    ground: Texture
    sky: Texture  # colors: horizon and zenith
    light: Light
    lattice: Lattice  # the noise table every texture of the scene samples
    track_points: np.ndarray  # [N, 3] tracked points: body coordinates, or world on the ground
    track_body: np.ndarray  # [N] int: 1 + index of the point's body, 0 for the ground

    @property
    def label(self) -> str:
        """The clip's class: the name of its camera motion (one of CAMERA_MOTIONS)."""
        return self.camera.motion


def _color_pair(rng: np.random.Generator, level: WorldLevel) -> np.ndarray:
    """Two related colours [2, 3] in [0, 1] from the palette every surface draws from."""
    first = rng.uniform(*level.palette, size=3)
    second = np.clip(first + rng.normal(0.0, level.palette_spread, size=3), *level.palette_clip)
    return np.stack([first, second])


def _texture(
    rng: np.random.Generator, frequency: tuple[float, float], level: WorldLevel
) -> Texture:
    """A texture with frequency in [low, high) = `frequency` cells per metre."""
    return Texture(
        colors=_color_pair(rng, level),
        frequency=float(rng.uniform(*frequency)),
        offset=rng.uniform(0.0, LATTICE_SIZE, size=3),
    )


def _sample_light(rng: np.random.Generator, level: WorldLevel) -> Light:
    """A sun above the horizon in any direction (level.sun_elevation degrees); low suns cast
    long shadows."""
    elevation = math.radians(rng.uniform(*level.sun_elevation))
    azimuth = rng.uniform(0.0, 2.0 * math.pi)
    direction = np.array(
        [
            math.cos(elevation) * math.cos(azimuth),
            math.sin(elevation),
            math.cos(elevation) * math.sin(azimuth),
        ]
    )
    return Light(
        direction=_unit(direction),
        intensity=float(rng.uniform(*level.sun_intensity)),
        ambient=float(rng.uniform(*level.ambient)),
    )


def _sample_shape(rng: np.random.Generator, shape: str, level: WorldLevel) -> np.ndarray:
    """Half sizes [3] of a body of `shape` (metres)."""
    if shape == "sphere":
        return np.full(3, rng.uniform(*level.sphere_radius))
    if shape == "box":
        return rng.uniform(*level.box_half_size, size=3)
    radius = rng.uniform(*level.cylinder_radius)
    half_height = rng.uniform(*level.cylinder_half_height)
    return np.array([radius, half_height, radius])


def _closest_approach(offset: np.ndarray, velocity: np.ndarray, duration: float) -> float:
    """Smallest |offset + velocity t| over t in [0, duration] (horizontal: x and z only)."""
    ox, oz, vx, vz = float(offset[0]), float(offset[2]), float(velocity[0]), float(velocity[2])
    speed2 = vx * vx + vz * vz
    t = 0.0 if speed2 == 0.0 else min(max(-(ox * vx + oz * vz) / speed2, 0.0), duration)
    return math.hypot(ox + vx * t, oz + vz * t)


def _fits(body: Body, placed: list[Body], camera: CameraPath) -> bool:
    """Whether `body` stays clear of the bodies already placed and of the camera for
    CLIP_SECONDS (bounding spheres, horizontally)."""
    for other in placed:
        gap = _closest_approach(
            body.start - other.start, body.velocity - other.velocity, CLIP_SECONDS
        )
        if gap < body.reach + other.reach + 0.05:
            return False
    for step in range(13):
        time = CLIP_SECONDS * step / 12
        away = body.center(time) - camera.eye(time)
        if math.hypot(float(away[0]), float(away[2])) < body.reach + CAMERA_CLEARANCE:
            return False
    return True


def _sample_body(
    rng: np.random.Generator, camera: CameraPath, placed: list[Body], level: WorldLevel
) -> Body:
    """A body that moves across the camera's view.

    Once some bodies are placed, a share level.occluder_share of new ones are occluders: aimed at a
    placed body, an occluder crosses the line of sight to it, just in front of it, at a random
    time mid-clip. The others start anywhere in front of the camera and head across its
    initial view (mostly towards the middle), so that bodies at different depths pass in front
    of one another too. In a catalog world the body is a kind drawn from the catalog, which
    fixes all but where it starts and which way it heads.
    """
    catalog = catalog_of(level) if level.catalog else None
    if catalog is None:
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        half_size = _sample_shape(rng, shape, level)
        speed = rng.uniform(*level.body_speed)
    else:
        kind = catalog.draw_kind(rng)
        shape, half_size = SHAPES[catalog.shape[kind]], catalog.half_size[kind].copy()
        speed = float(catalog.speed[kind])
    reach = math.sqrt(_dot3(half_size, half_size))
    if placed and rng.random() < level.occluder_share:
        behind = placed[int(rng.integers(len(placed)))]
        time = rng.uniform(*level.occlusion_time) * CLIP_SECONDS
        eye = camera.eye(time)
        sight = behind.center(time) - eye
        sight[1] = 0.0
        distance = math.sqrt(_dot3(sight, sight))
        sight = sight / distance
        gap = reach + behind.reach + rng.uniform(*level.occlusion_gap)
        across = np.array([-sight[2], 0.0, sight[0]])
        velocity = float(rng.choice([-1.0, 1.0])) * speed * across
        start = eye + (distance - gap) * sight - velocity * time
    else:
        forward = np.array([-math.cos(camera.angle0), 0.0, -math.sin(camera.angle0)])
        right = np.array([-forward[2], 0.0, forward[0]])
        across, along = rng.uniform(*level.crossing_across), rng.uniform(*level.crossing_along)
        start = camera.target + across * right + along * forward
        towards_middle = -1.0 if across > 0 else 1.0
        direction = towards_middle if rng.random() < level.crossing_inwards else -towards_middle
        velocity = direction * speed * right + rng.uniform(*level.crossing_drift) * forward
    start[1] = reach  # the body never dips into the ground
    if catalog is not None:
        return _kind_body(catalog, kind, start, velocity)
    return Body(
        shape=shape,
        half_size=half_size,
        start=start,
        velocity=velocity,
        bounce=float(rng.uniform(*level.body_bounce)),
        axis=_unit(rng.normal(size=3)),
        spin=float(rng.uniform(*level.body_spin)),
        texture=_texture(rng, level.body_texture, level),
        shine=float(rng.uniform(*level.shine)) if rng.random() < level.glossy_share else 0.0,
    )


def _kind_body(catalog: Catalog, kind: int, start: np.ndarray, velocity: np.ndarray) -> Body:
    """A body of the catalog's `kind` starting at `start` with `velocity`."""
    return Body(
        shape=SHAPES[catalog.shape[kind]],
        half_size=catalog.half_size[kind].copy(),
        start=start,
        velocity=velocity,
        bounce=float(catalog.bounce[kind]),
        axis=catalog.axis[kind].copy(),
        spin=float(catalog.spin[kind]),
        texture=Texture(
            colors=catalog.colors[kind].copy(),
            frequency=float(catalog.frequency[kind]),
            offset=catalog.offset[kind].copy(),
        ),
        shine=float(catalog.shine[kind]),
        kind=kind,
    )


def _surroundings(
    rng: np.random.Generator, level: WorldLevel
) -> tuple[Texture, Texture, Light, Lattice]:
    """The ground's and the sky's textures, the light and the noise lattice of a scene: drawn
    afresh, or in a catalog world a place of its catalog, the catalog's lattice and a fresh
    light."""
    if level.catalog is None:
        ground = _texture(rng, level.ground_texture, level)
        sky = Texture(
            colors=np.stack(
                [rng.uniform(*level.sky_horizon, 3), rng.uniform(*level.sky_zenith, 3)]
            ),
            frequency=float(rng.uniform(*level.sky_texture)),
            offset=rng.uniform(0.0, LATTICE_SIZE, size=3),
        )
        return ground, sky, _sample_light(rng, level), Lattice.sample(rng)
    catalog = catalog_of(level)
    place = catalog.draw_place(rng)
    ground = Texture(
        catalog.ground_colors[place].copy(),
        float(catalog.ground_frequency[place]),
        catalog.ground_offset[place].copy(),
    )
    sky = Texture(
        catalog.sky_colors[place].copy(),
        float(catalog.sky_frequency[place]),
        catalog.sky_offset[place].copy(),
    )
    return ground, sky, _sample_light(rng, level), Lattice(catalog.lattice)


def _surface_point(rng: np.random.Generator, body: Body) -> np.ndarray:
    """A random point [3] on a body's surface, in body coordinates."""
    size = body.half_size
    if body.shape == "sphere":
        return _unit(rng.normal(size=3)) * size[0]
    if body.shape == "box":
        point = rng.uniform(-size, size)
        axis = int(rng.integers(3))
        point[axis] = size[axis] * rng.choice([-1.0, 1.0])
        return point
    angle = rng.uniform(0.0, 2.0 * math.pi)
    side_area, cap_area = 2 * math.pi * size[0] * 2 * size[1], 2 * math.pi * size[0] ** 2
    if rng.random() < side_area / (side_area + cap_area):
        radius, height = size[0], rng.uniform(-size[1], size[1])
    else:
        radius, height = size[0] * math.sqrt(rng.random()), size[1] * rng.choice([-1.0, 1.0])
    return np.array([radius * math.cos(angle), height, radius * math.sin(angle)])


def _sample_camera(rng: np.random.Generator, motion: str | None, level: WorldLevel) -> CameraPath:
    if motion is None:
        motion = CAMERA_MOTIONS[int(rng.integers(len(CAMERA_MOTIONS)))]
    sign = float(rng.choice([-1.0, 1.0]))
    return CameraPath(
        motion=motion,
        target=np.array(
            [rng.uniform(*level.camera_target), 0.5, rng.uniform(*level.camera_target)]
        ),
        radius=float(rng.uniform(*level.camera_radius)),
        height=float(rng.uniform(*level.camera_height)),
        angle0=float(rng.uniform(0.0, 2.0 * math.pi)),
        angular_speed=sign * float(rng.uniform(*level.orbit_speed)) if motion == "orbit" else 0.0,
        dolly=sign * float(rng.uniform(*level.dolly_speed)) if motion == "dolly" else 0.0,
        pan=sign * float(rng.uniform(*level.pan_speed)) if motion == "pan" else 0.0,
        fov_degrees=float(rng.uniform(*level.field_of_view)),
    )


def sample_scene(
    rng: np.random.Generator,
    motion: str | None = None,
    level: WorldLevel = WORLD_LEVELS[STANDARD],
) -> Scene:
    """Draw a random scene of complexity `level` (fourds.config.world_levels): its bodies, light,
    textures, camera and tracks.

    Bodies are drawn until they fit (clear of each other and of the camera); a body that does
    not fit in its attempts is dropped, which left fewer than the standard level's fewest
    bodies in none of 2000 seeds.

    Args:
        rng: the only source of randomness.
        motion: the camera motion (the clip's label), one of CAMERA_MOTIONS; drawn uniformly
            when None. `fourds.data.corpus` cycles through them so that classes are balanced.
        level: the ranges every draw is made from.
    """
    if motion is not None and motion not in CAMERA_MOTIONS:
        raise ValueError(f"unknown camera motion {motion!r}; expected one of {CAMERA_MOTIONS}")
    camera = _sample_camera(rng, motion, level)
    fewest, most = level.bodies
    wanted = int(rng.integers(fewest, most + 1))
    bodies: list[Body] = []
    for _ in range(wanted):
        # The first `fewest` bodies get more tries: crowded views rarely need them.
        attempts = PLACEMENT_ATTEMPTS * (10 if len(bodies) < fewest else 1)
        for _attempt in range(attempts):
            candidate = _sample_body(rng, camera, bodies, level)
            if _fits(candidate, bodies, camera):
                bodies.append(candidate)
                break
    count = len(bodies)
    spread = level.ground_tracks
    ground = np.stack(
        [
            np.array([rng.uniform(-spread, spread), 0.0, rng.uniform(-spread, spread)])
            for _ in range(GROUND_TRACKS)
        ]
    )
    owners = [index % count for index in range(TRACKS_PER_CLIP - GROUND_TRACKS)]
    on_bodies = np.stack([_surface_point(rng, bodies[owner]) for owner in owners])
    ground_texture, sky, light, lattice = _surroundings(rng, level)
    return Scene(
        bodies=tuple(bodies),
        camera=camera,
        ground=ground_texture,
        sky=sky,
        light=light,
        lattice=lattice,
        track_points=np.concatenate([ground, on_bodies]),
        track_body=np.array([0] * GROUND_TRACKS + [owner + 1 for owner in owners]),
    )
