"""Scenes as tensors: a batch of the procedural world's scenes, sampled on any device.

`SceneBatch` holds B scenes of fourds.world.scene side by side, bodies padded to MAX_BODIES
slots (shape -1 marks an empty slot; the bodies of a scene fill its first slots). It comes from
either

- `SceneBatch.from_scenes(scenes)`: scenes drawn by `fourds.world.scene.sample_scene` (the
  corpus's world, one numpy scene at a time), packed; or
- `sample_scenes(keys, device)`: the same world drawn for B clips at once on the device, from
  the clips' keys (fourds.world.draws): the camera, bodies, light, textures, noise lattice and
  tracked points from the same distributions as `sample_scene` (one table of them per complexity
  level: fourds.config.world_levels; a catalog level's kinds and places from the same catalog,
  fourds.world.catalog), placement by a fixed number
  of candidates per body slot (the first that stays clear wins) instead of a loop until one
  fits. A key gives the same scene on a CPU and a GPU up to the last bit of a log, cosine or
  sine (see `tests/world/test_batch.py`).

The motion of bodies and camera is evaluated on the device for any times (`body_poses`,
`camera_poses`), in the conventions of fourds.world.scene (OpenCV camera axes, y up in the
world).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from fourds.config.world_levels import MAX_BODIES, STANDARD, WORLD_LEVELS, WorldLevel
from fourds.world.catalog import catalog_of
from fourds.world.draws import Draws
from fourds.world.noise import LATTICE_SIZE
from fourds.world.scene import (
    CAMERA_CLEARANCE,
    CAMERA_MOTIONS,
    CLIP_SECONDS,
    GROUND_TRACKS,
    SHAPES,
    TRACKS_PER_CLIP,
    Scene,
)

CANDIDATES = 48  # candidate bodies drawn per slot; the first that stays clear is placed
CLEARANCE_TIMES = 13  # times over CLIP_SECONDS at which bodies keep clear of the camera


@dataclasses.dataclass(frozen=True)
class SceneBatch:
    """B scenes (fields are tensors with a leading B; M = MAX_BODIES body slots; N tracks).

    Bodies: shape [B, M] int64 (index into SHAPES, -1 for an empty slot), half_size, start,
    velocity, axis [B, M, 3], bounce, spin, shine, body_frequency [B, M], body_colors
    [B, M, 2, 3], body_offset [B, M, 3], kind [B, M] int64 (the body's kind in a catalog world,
    fourds.world.catalog; -1 for none). Ground and sky textures: *_colors [B, 2, 3],
    *_frequency [B], *_offset [B, 3]. Light: light_direction [B, 3], light_intensity,
    ambient [B]. lattice [B, LATTICE_SIZE**3]. Camera (fourds.world.scene.CameraPath): motion
    [B] int64 (index into CAMERA_MOTIONS: the label), target [B, 3], radius, height, angle0,
    angular_speed, dolly, pan, fov_degrees [B]. Tracks: track_points [B, N, 3] (body
    coordinates, world on the ground), track_body [B, N] int64 (1 + slot, 0 for the ground).
    """

    shape: torch.Tensor
    half_size: torch.Tensor
    start: torch.Tensor
    velocity: torch.Tensor
    bounce: torch.Tensor
    axis: torch.Tensor
    spin: torch.Tensor
    shine: torch.Tensor
    body_colors: torch.Tensor
    body_frequency: torch.Tensor
    body_offset: torch.Tensor
    kind: torch.Tensor
    ground_colors: torch.Tensor
    ground_frequency: torch.Tensor
    ground_offset: torch.Tensor
    sky_colors: torch.Tensor
    sky_frequency: torch.Tensor
    sky_offset: torch.Tensor
    light_direction: torch.Tensor
    light_intensity: torch.Tensor
    ambient: torch.Tensor
    lattice: torch.Tensor
    motion: torch.Tensor
    target: torch.Tensor
    radius: torch.Tensor
    height: torch.Tensor
    angle0: torch.Tensor
    angular_speed: torch.Tensor
    dolly: torch.Tensor
    pan: torch.Tensor
    fov_degrees: torch.Tensor
    track_points: torch.Tensor
    track_body: torch.Tensor

    def __len__(self) -> int:
        return len(self.shape)

    @property
    def device(self) -> torch.device:
        return self.shape.device

    def to(self, device: torch.device | str) -> SceneBatch:
        return SceneBatch(**{f.name: getattr(self, f.name).to(device) for f in _FIELDS})

    def __getitem__(self, index: slice) -> SceneBatch:
        """The scenes `index` (a slice) of the batch."""
        return SceneBatch(**{f.name: getattr(self, f.name)[index] for f in _FIELDS})

    @property
    def reach(self) -> torch.Tensor:
        """[B, M] radius of each body's bounding sphere (0 for an empty slot)."""
        return torch.sqrt((self.half_size**2).sum(-1)) * (self.shape >= 0)

    def labels(self) -> list[str]:
        """Each scene's class: the name of its camera motion."""
        return [CAMERA_MOTIONS[index] for index in self.motion.tolist()]

    @classmethod
    def from_scenes(cls, scenes: list[Scene], device: torch.device | str = "cpu") -> SceneBatch:
        """Pack scenes drawn by `sample_scene` (float32 on `device`)."""

        def stack(values, dtype=np.float32) -> torch.Tensor:
            return torch.from_numpy(np.asarray(values, dtype)).to(device)

        def body_field(read, empty) -> torch.Tensor:
            rows = [[read(body) for body in scene.bodies] for scene in scenes]
            return stack([row + [empty] * (MAX_BODIES - len(row)) for row in rows])

        zero3 = np.zeros(3)
        camera = [scene.camera for scene in scenes]
        return cls(
            shape=body_field(lambda body: SHAPES.index(body.shape), -1).long(),
            half_size=body_field(lambda body: body.half_size, zero3),
            start=body_field(lambda body: body.start, zero3),
            velocity=body_field(lambda body: body.velocity, zero3),
            bounce=body_field(lambda body: body.bounce, 0.0),
            axis=body_field(lambda body: body.axis, np.array([0.0, 1.0, 0.0])),
            spin=body_field(lambda body: body.spin, 0.0),
            shine=body_field(lambda body: body.shine, 0.0),
            body_colors=body_field(lambda body: body.texture.colors, np.zeros((2, 3))),
            body_frequency=body_field(lambda body: body.texture.frequency, 0.0),
            body_offset=body_field(lambda body: body.texture.offset, zero3),
            kind=body_field(lambda body: body.kind, -1).long(),
            ground_colors=stack([scene.ground.colors for scene in scenes]),
            ground_frequency=stack([scene.ground.frequency for scene in scenes]),
            ground_offset=stack([scene.ground.offset for scene in scenes]),
            sky_colors=stack([scene.sky.colors for scene in scenes]),
            sky_frequency=stack([scene.sky.frequency for scene in scenes]),
            sky_offset=stack([scene.sky.offset for scene in scenes]),
            light_direction=stack([scene.light.direction for scene in scenes]),
            light_intensity=stack([scene.light.intensity for scene in scenes]),
            ambient=stack([scene.light.ambient for scene in scenes]),
            lattice=stack([scene.lattice.values for scene in scenes]),
            motion=stack([CAMERA_MOTIONS.index(c.motion) for c in camera], np.int64),
            target=stack([c.target for c in camera]),
            radius=stack([c.radius for c in camera]),
            height=stack([c.height for c in camera]),
            angle0=stack([c.angle0 for c in camera]),
            angular_speed=stack([c.angular_speed for c in camera]),
            dolly=stack([c.dolly for c in camera]),
            pan=stack([c.pan for c in camera]),
            fov_degrees=stack([c.fov_degrees for c in camera]),
            track_points=stack([scene.track_points for scene in scenes]),
            track_body=stack([scene.track_body for scene in scenes], np.int64),
        )


_FIELDS = dataclasses.fields(SceneBatch)


def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Dot products over the last axis [..., 3], broadcast."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def unit(vectors: torch.Tensor) -> torch.Tensor:
    """`vectors` [..., 3] scaled to length one."""
    return vectors / torch.sqrt(dot(vectors, vectors)).unsqueeze(-1)


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.stack(
        [
            a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
            a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
            a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
        ],
        dim=-1,
    )


def axis_rotations(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotations [..., 3, 3] by `angle` [...] about unit axes [..., 3] (Rodrigues)."""
    c, s = torch.cos(angle), torch.sin(angle)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    rows = [
        [c + x * x * (1 - c), x * y * (1 - c) - z * s, x * z * (1 - c) + y * s],
        [y * x * (1 - c) + z * s, c + y * y * (1 - c), y * z * (1 - c) - x * s],
        [z * x * (1 - c) - y * s, z * y * (1 - c) + x * s, c + z * z * (1 - c)],
    ]
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def body_poses(batch: SceneBatch, times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres [B, M, T, 3] and body-to-world rotations [B, M, T, 3, 3] at times [B, T]."""
    t = times[:, None, :]  # [B, 1, T]
    centers = batch.start[:, :, None, :] + batch.velocity[:, :, None, :] * t[..., None]
    lift = batch.start[:, :, None, 1] + batch.bounce[:, :, None] * torch.abs(torch.sin(2.0 * t))
    centers = torch.cat([centers[..., :1], lift[..., None], centers[..., 2:]], dim=-1)
    axis = batch.axis[:, :, None, :].expand(*centers.shape)
    rotations = axis_rotations(axis, batch.spin[:, :, None] * t)
    return centers, rotations


def camera_poses(batch: SceneBatch, times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """World-to-camera rotations [B, T, 3, 3] (rows: the camera axes in the world) and camera
    centres [B, T, 3] at times [B, T] (fourds.world.scene.CameraPath.extrinsics)."""

    def per_scene(value: torch.Tensor) -> torch.Tensor:
        return value[:, None]

    angle = per_scene(batch.angle0) + per_scene(batch.angular_speed) * times
    zero = torch.zeros_like(angle)
    eye = batch.target[:, None, :] + torch.stack(
        [
            per_scene(batch.radius) * torch.cos(angle),
            per_scene(batch.height) + zero,
            per_scene(batch.radius) * torch.sin(angle),
        ],
        dim=-1,
    )
    forward = unit(batch.target[:, None, :] - eye)
    eye = eye - forward * (per_scene(batch.dolly) * times)[..., None]
    up = torch.tensor([0.0, 1.0, 0.0], device=times.device).expand(*forward.shape)
    pan = axis_rotations(up, per_scene(batch.pan) * times)
    forward = torch.stack([dot(pan[..., k, :], forward) for k in range(3)], dim=-1)
    right = unit(_cross(forward, up))
    down = _cross(forward, right)
    return torch.stack([right, down, forward], dim=-2), eye


def focal_lengths(batch: SceneBatch, width: int) -> torch.Tensor:
    """[B] focal length in pixels for images `width` pixels wide (principal point centred)."""
    return 0.5 * width / torch.tan(torch.deg2rad(batch.fov_degrees) / 2.0)


# -- sampling on the device ----------------------------------------------------------------------


def _between(draws: Draws, bounds: tuple[float, float], *shape: int) -> torch.Tensor:
    """Uniform draws [B, *shape] in [low, high) = `bounds`."""
    low, high = bounds
    return draws.uniform(*shape, low=low, high=high)


def _camera(
    draws: Draws, motion: torch.Tensor | None, level: WorldLevel
) -> dict[str, torch.Tensor]:
    """The camera's fields ([B] each, target [B, 3]) as `scene._sample_camera` draws them."""
    if motion is None:
        motion = draws.integers(len(CAMERA_MOTIONS))
    sign = draws.sign()
    target = torch.stack(
        [
            _between(draws, level.camera_target),
            torch.full_like(sign, 0.5),
            _between(draws, level.camera_target),
        ],
        dim=-1,
    )
    radius, height = _between(draws, level.camera_radius), _between(draws, level.camera_height)
    angle0 = draws.uniform(high=2.0 * math.pi)
    moving = {name: motion == CAMERA_MOTIONS.index(name) for name in ("orbit", "dolly", "pan")}
    return {
        "motion": motion,
        "target": target,
        "radius": radius,
        "height": height,
        "angle0": angle0,
        "angular_speed": sign * _between(draws, level.orbit_speed) * moving["orbit"],
        "dolly": sign * _between(draws, level.dolly_speed) * moving["dolly"],
        "pan": sign * _between(draws, level.pan_speed) * moving["pan"],
        "fov_degrees": _between(draws, level.field_of_view),
    }


def _texture(
    draws: Draws, frequency: tuple[float, float], level: WorldLevel, *shape: int
) -> dict[str, torch.Tensor]:
    """colors [B, *shape, 2, 3] (a palette pair), frequency [B, *shape] in `frequency`'s range,
    offset [B, *shape, 3]."""
    first = _between(draws, level.palette, *shape, 3)
    second = first + level.palette_spread * draws.normal(*shape, 3)
    second = torch.clamp(second, *level.palette_clip)
    return {
        "colors": torch.stack([first, second], dim=-2),
        "frequency": _between(draws, frequency, *shape),
        "offset": draws.uniform(*shape, 3, high=float(LATTICE_SIZE)),
    }


def _half_sizes(draws: Draws, shape: torch.Tensor, level: WorldLevel) -> torch.Tensor:
    """Half sizes [B, K, 3] of candidate bodies of `shape` [B, K] (`scene._sample_shape`)."""
    k = shape.shape[1:]
    sphere = _between(draws, level.sphere_radius, *k)[..., None].expand(*shape.shape, 3)
    box = _between(draws, level.box_half_size, *k, 3)
    radius = _between(draws, level.cylinder_radius, *k)
    half_height = _between(draws, level.cylinder_half_height, *k)
    cylinder = torch.stack([radius, half_height, radius], dim=-1)
    kind = shape[..., None]
    return torch.where(kind == 0, sphere, torch.where(kind == 1, box, cylinder))


def _closest_approach(offset: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
    """Smallest horizontal |offset + velocity t| over t in [0, CLIP_SECONDS] ([..., 3] -> [...])."""
    ox, oz, vx, vz = offset[..., 0], offset[..., 2], velocity[..., 0], velocity[..., 2]
    speed2 = vx * vx + vz * vz
    t = torch.where(speed2 > 0, -(ox * vx + oz * vz) / speed2.clamp(min=1e-30), 0.0)
    t = t.clamp(0.0, CLIP_SECONDS)
    return torch.hypot(ox + vx * t, oz + vz * t)


def _candidates(
    draws: Draws,
    camera: SceneBatch,
    placed: dict[str, torch.Tensor],
    count: torch.Tensor,
    level: WorldLevel,
) -> dict[str, torch.Tensor]:
    """CANDIDATES candidate bodies per scene ([B, K] fields) for the next slot, as
    `scene._sample_body` draws them: occluders of a placed body (a share level.occluder_share
    once `count` [B] > 0 bodies are placed) or bodies that head across the camera's initial
    view."""
    k = CANDIDATES
    kinds = _kind_table(draws, level, k)
    if kinds is None:
        shape = draws.integers(len(SHAPES), k)
        half_size = _half_sizes(draws, shape, level)
        speed = _between(draws, level.body_speed, k)
    else:
        shape, half_size, speed = kinds["shape"], kinds["half_size"], kinds["speed"]
    reach = torch.sqrt((half_size**2).sum(-1))

    # an occluder: across the line of sight to a placed body, just in front of it, mid-clip
    behind = draws.integers(count.clamp(min=1), k)  # [B, K]: which placed body
    early, late = level.occlusion_time
    time = draws.uniform(k, low=early * CLIP_SECONDS, high=late * CLIP_SECONDS)
    _, eye = camera_poses(camera, time)  # [B, K, 3]
    centers, _ = body_poses(_placed_scene(camera, placed), time)  # [B, M, K, 3]
    index = behind[:, None, :, None].expand(-1, 1, -1, 3)
    behind_center = torch.gather(centers, 1, index)[:, 0]  # [B, K, 3]
    behind_reach = torch.gather(placed["reach"], 1, behind)
    sight = behind_center - eye
    sight = torch.stack([sight[..., 0], torch.zeros_like(speed), sight[..., 2]], dim=-1)
    distance = torch.sqrt(dot(sight, sight))
    sight = sight / distance[..., None]
    gap = reach + behind_reach + _between(draws, level.occlusion_gap, k)
    across = torch.stack([-sight[..., 2], torch.zeros_like(speed), sight[..., 0]], dim=-1)
    occluder_velocity = (draws.sign(k) * speed)[..., None] * across
    occluder_start = eye + (distance - gap)[..., None] * sight - occluder_velocity * time[..., None]

    # a crosser: anywhere in front of the camera, heading across its view
    angle0 = camera.angle0[:, None].expand_as(speed)
    forward = torch.stack([-torch.cos(angle0), torch.zeros_like(speed), -torch.sin(angle0)], -1)
    right = torch.stack([-forward[..., 2], torch.zeros_like(speed), forward[..., 0]], dim=-1)
    sideways = _between(draws, level.crossing_across, k)
    along = _between(draws, level.crossing_along, k)
    crosser_start = camera.target[:, None, :] + sideways[..., None] * right
    crosser_start = crosser_start + along[..., None] * forward
    towards_middle = torch.where(sideways > 0, -1.0, 1.0)
    inwards = draws.uniform(k) < level.crossing_inwards
    direction = torch.where(inwards, towards_middle, -towards_middle)
    crosser_velocity = (direction * speed)[..., None] * right
    drift = _between(draws, level.crossing_drift, k)
    crosser_velocity = crosser_velocity + drift[..., None] * forward

    occluder = ((count > 0)[:, None] & (draws.uniform(k) < level.occluder_share))[..., None]
    start = torch.where(occluder, occluder_start, crosser_start)
    start = torch.cat([start[..., :1], reach[..., None], start[..., 2:]], dim=-1)
    placement = {
        "shape": shape,
        "half_size": half_size,
        "reach": reach,
        "start": start,
        "velocity": torch.where(occluder, occluder_velocity, crosser_velocity),
    }
    if kinds is not None:
        return placement | {name: kinds[name] for name in KIND_FIELDS}
    texture = _texture(draws, level.body_texture, level, k)
    glossy = draws.uniform(k) < level.glossy_share
    return placement | {
        "bounce": _between(draws, level.body_bounce, k),
        "axis": unit(draws.normal(k, 3)),
        "spin": _between(draws, level.body_spin, k),
        "shine": _between(draws, level.shine, k) * glossy,
        "body_colors": texture["colors"],
        "body_frequency": texture["frequency"],
        "body_offset": texture["offset"],
        "kind": torch.full_like(shape, -1),
    }


# what a catalog kind fixes of a body beyond its shape, size and speed
KIND_FIELDS = (
    "bounce",
    "axis",
    "spin",
    "shine",
    "body_colors",
    "body_frequency",
    "body_offset",
    "kind",
)


def _zipf_draw(draws: Draws, cdf: torch.Tensor, *shape: int) -> torch.Tensor:
    """int64 [B, *shape] ranks drawn by the running sums `cdf` [N] (one uniform each)."""
    rank = torch.searchsorted(cdf, draws.uniform(*shape), right=True)
    return rank.clamp(max=len(cdf) - 1)


def _kind_table(draws: Draws, level: WorldLevel, k: int) -> dict[str, torch.Tensor] | None:
    """In a catalog world, `k` kinds per scene drawn from the catalog by their frequencies and
    what each fixes of a body ([B, k] fields, as `_candidates` names them); None in a
    continuous one (draws nothing)."""
    if level.catalog is None:
        return None
    table = catalog_of(level).tensors(draws.low.device)
    kind = _zipf_draw(draws, table["kind_cdf"], k)
    fields = {
        "shape": "shape",
        "half_size": "half_size",
        "speed": "speed",
        "bounce": "bounce",
        "axis": "axis",
        "spin": "spin",
        "shine": "shine",
        "body_colors": "colors",
        "body_frequency": "frequency",
        "body_offset": "offset",
    }
    return {name: table[source][kind] for name, source in fields.items()} | {"kind": kind}


BODY_FIELDS = ("shape", "half_size", "start", "velocity", *KIND_FIELDS)


def _placed_scene(camera: SceneBatch, placed: dict[str, torch.Tensor]) -> SceneBatch:
    """`camera` with the bodies placed so far (for their poses)."""
    return dataclasses.replace(camera, **{name: placed[name] for name in BODY_FIELDS})


def _clear(
    camera: SceneBatch, placed: dict[str, torch.Tensor], candidates: dict[str, torch.Tensor]
) -> torch.Tensor:
    """[B, K]: whether each candidate stays clear of the placed bodies and of the camera for
    CLIP_SECONDS (bounding spheres, horizontally; `scene._fits`)."""
    gap = _closest_approach(
        candidates["start"][:, :, None] - placed["start"][:, None],
        candidates["velocity"][:, :, None] - placed["velocity"][:, None],
    )  # [B, K, M]
    needed = candidates["reach"][:, :, None] + placed["reach"][:, None] + 0.05
    clear = ((gap >= needed) | (placed["shape"][:, None] < 0)).all(-1)
    times = torch.linspace(0.0, CLIP_SECONDS, CLEARANCE_TIMES, device=gap.device)
    _, eye = camera_poses(camera, times.expand(len(gap), -1))  # [B, S, 3]
    centers, _ = body_poses(
        dataclasses.replace(camera, **{name: candidates[name] for name in BODY_FIELDS}),
        times.expand(len(gap), -1),
    )  # [B, K, S, 3]
    away = centers - eye[:, None]
    distance = torch.hypot(away[..., 0], away[..., 2])
    return clear & (distance >= candidates["reach"][..., None] + CAMERA_CLEARANCE).all(-1)


def _surface_points(draws: Draws, shape: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Random points [B, N, 3] on bodies of `shape` [B, N] and half sizes [B, N, 3], in body
    coordinates (`scene._surface_point`)."""
    n = shape.shape[1]
    sphere = unit(draws.normal(n, 3)) * size[..., :1]
    box = (2.0 * draws.uniform(n, 3) - 1.0) * size
    face = draws.integers(3, n)
    on_face = torch.nn.functional.one_hot(face, 3).bool()
    box = torch.where(on_face, size * draws.sign(n)[..., None], box)
    angle = draws.uniform(n, high=2.0 * math.pi)
    radius, half_height = size[..., 0], size[..., 1]
    side_area, cap_area = 4 * math.pi * radius * half_height, 2 * math.pi * radius**2
    on_side = draws.uniform(n) < side_area / (side_area + cap_area)
    ring = torch.where(on_side, radius, radius * torch.sqrt(draws.uniform(n)))
    y = torch.where(
        on_side, (2.0 * draws.uniform(n) - 1.0) * half_height, half_height * draws.sign(n)
    )
    cylinder = torch.stack([ring * torch.cos(angle), y, ring * torch.sin(angle)], dim=-1)
    kind = shape[..., None]
    return torch.where(kind == 0, sphere, torch.where(kind == 1, box, cylinder))


def sample_scenes(
    keys: torch.Tensor,
    motion: torch.Tensor | None = None,
    level: WorldLevel = WORLD_LEVELS[STANDARD],
) -> SceneBatch:
    """Draw one scene per key (int64 [B, 2], fourds.world.draws.clip_keys) on the keys' device.

    Args:
        motion: int64 [B] camera motions (indices into CAMERA_MOTIONS, the labels); drawn
            uniformly when None.
        level: the ranges every draw is made from (fourds.config.world_levels).
    """
    draws = Draws(keys)
    batch, device = len(keys), keys.device
    cam = _camera(draws, None if motion is None else motion.to(device), level)
    place = _place(draws, level)
    sky = (
        place["sky"]
        if place
        else {  # colours: horizon and zenith
            "colors": torch.stack(
                [_between(draws, level.sky_horizon, 3), _between(draws, level.sky_zenith, 3)], -2
            ),
            "frequency": _between(draws, level.sky_texture),
            "offset": draws.uniform(3, high=float(LATTICE_SIZE)),
        }
    )
    elevation = torch.deg2rad(_between(draws, level.sun_elevation))
    azimuth = draws.uniform(high=2.0 * math.pi)
    light = torch.stack(
        [
            torch.cos(elevation) * torch.cos(azimuth),
            torch.sin(elevation),
            torch.cos(elevation) * torch.sin(azimuth),
        ],
        dim=-1,
    )
    ground = place["ground"] if place else _texture(draws, level.ground_texture, level)
    scene = SceneBatch(
        **{name: None for name in BODY_FIELDS},  # placed below
        ground_colors=ground["colors"],
        ground_frequency=ground["frequency"],
        ground_offset=ground["offset"],
        sky_colors=sky["colors"],
        sky_frequency=sky["frequency"],
        sky_offset=sky["offset"],
        light_direction=unit(light),
        light_intensity=_between(draws, level.sun_intensity),
        ambient=_between(draws, level.ambient),
        lattice=place["lattice"] if place else draws.uniform(LATTICE_SIZE**3),
        track_points=None,
        track_body=None,
        **cam,
    )
    fewest, most = level.bodies
    wanted = fewest + draws.integers(most - fewest + 1)
    placed = _empty_bodies(batch, device)
    count = torch.zeros(batch, dtype=torch.int64, device=device)
    rows = torch.arange(batch, device=device)
    for slot in range(MAX_BODIES):
        candidates = _candidates(draws, scene, placed, count, level)
        clear = _clear(scene, placed, candidates)
        first = torch.argmax(clear.to(torch.int8), dim=1)  # the first clear candidate
        place = clear[rows, first] & (slot < wanted)
        target = count.clamp(max=MAX_BODIES - 1)  # bodies fill the first slots
        for name in BODY_FIELDS:
            chosen = candidates[name][rows, first]
            current = placed[name][rows, target]
            placed[name][rows, target] = torch.where(
                place.view(-1, *([1] * (chosen.dim() - 1))), chosen, current
            )
        placed["reach"][rows, target] = torch.where(
            place, candidates["reach"][rows, first], placed["reach"][rows, target]
        )
        count = count + place
    bodies = {name: placed[name] for name in BODY_FIELDS}
    # tracks: GROUND_TRACKS on the ground, the rest over the bodies in turn
    spread = (-level.ground_tracks, level.ground_tracks)
    ground_points = torch.stack(
        [
            _between(draws, spread, GROUND_TRACKS),
            torch.zeros(batch, GROUND_TRACKS, device=device),
            _between(draws, spread, GROUND_TRACKS),
        ],
        dim=-1,
    )
    on_bodies = TRACKS_PER_CLIP - GROUND_TRACKS
    owner = torch.arange(on_bodies, device=device)[None] % count.clamp(min=1)[:, None]
    owner_shape = torch.gather(bodies["shape"], 1, owner)
    owner_size = torch.gather(bodies["half_size"], 1, owner[..., None].expand(-1, -1, 3))
    surface = _surface_points(draws, owner_shape, owner_size)
    track_body = torch.cat([torch.zeros_like(ground_points[..., 0]).long(), owner + 1], dim=1)
    return dataclasses.replace(
        scene,
        **bodies,
        track_points=torch.cat([ground_points, surface], dim=1),
        track_body=track_body,
    )


def _place(draws: Draws, level: WorldLevel) -> dict[str, dict | torch.Tensor] | None:
    """In a catalog world, each scene's place drawn from the catalog by its frequency: its
    "ground" and "sky" textures (colors [B, 2, 3], frequency [B], offset [B, 3]) and the
    catalog's "lattice" [B, LATTICE_SIZE**3]; None in a continuous one (draws nothing)."""
    if level.catalog is None:
        return None
    table = catalog_of(level).tensors(draws.low.device)
    place = _zipf_draw(draws, table["place_cdf"])
    return {
        surface: {
            "colors": table[f"{surface}_colors"][place],
            "frequency": table[f"{surface}_frequency"][place],
            "offset": table[f"{surface}_offset"][place],
        }
        for surface in ("ground", "sky")
    } | {"lattice": table["lattice"].expand(len(draws), -1)}


def _empty_bodies(batch: int, device: torch.device) -> dict[str, torch.Tensor]:
    """MAX_BODIES empty slots per scene ([B, M] fields, shape -1)."""

    def zeros(*shape: int) -> torch.Tensor:
        return torch.zeros(batch, MAX_BODIES, *shape, device=device)

    axis = zeros(3)
    axis[..., 1] = 1.0
    return {
        "shape": torch.full((batch, MAX_BODIES), -1, dtype=torch.int64, device=device),
        "half_size": zeros(3),
        "reach": zeros(),
        "start": zeros(3),
        "velocity": zeros(3),
        "bounce": zeros(),
        "axis": axis,
        "spin": zeros(),
        "shine": zeros(),
        "body_colors": zeros(2, 3),
        "body_frequency": zeros(),
        "body_offset": zeros(3),
        "kind": torch.full((batch, MAX_BODIES), -1, dtype=torch.int64, device=device),
    }
