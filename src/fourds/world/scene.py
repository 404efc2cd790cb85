"""Procedural 4D scenes: what is in the world and how it moves.

A scene is a textured ground plane (y = 0, y points up), a textured sky dome that closes the
world (so every pixel has a finite depth), 2-4 textured rigid bodies (spheres, boxes and
cylinders), each with its own translation, bounce and rotation about its own axis, and a
camera whose motion type (orbit, dolly, pan or static) is the clip's label. It also fixes the
surface points whose 2D tracks are ground truth. Everything is a pure function of a
`numpy.random.Generator`, so a seed fixes the whole clip.

Camera convention (OpenCV): x right, y down, z forward; extrinsics map world to camera.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

DOME_RADIUS = 30.0
SHAPES = ("sphere", "box", "cylinder")
CAMERA_MOTIONS = ("orbit", "dolly", "pan", "static")
MAX_BODIES = 4
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
class Body:
    """A textured rigid body.

    Its surface in body coordinates: sphere |p| = r with half_size (r, r, r); box |p_k| <=
    half_size[k]; cylinder about the body's y axis, radius half_size[0], half height
    half_size[1]. The texture is a 3D checker of body coordinates, so it moves with the body.
    """

    shape: str
    half_size: np.ndarray  # [3] metres
    start: np.ndarray  # [3] centre at t = 0 (metres)
    velocity: np.ndarray  # [3] metres per second (horizontal)
    bounce: float  # vertical oscillation amplitude (metres)
    axis: np.ndarray  # [3] unit rotation axis (world)
    spin: float  # radians per second about `axis`
    colors: np.ndarray  # [2, 3] the two texture colours in [0, 1]
    checker: float  # checker cells per metre

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
    ground_colors: np.ndarray  # [2, 3]
    ground_tile: float  # metres per checker tile
    sky_colors: np.ndarray  # [2, 3] horizon and zenith
    track_points: np.ndarray  # [N, 3] tracked points: body coordinates, or world on the ground
    track_body: np.ndarray  # [N] int: 1 + index of the point's body, 0 for the ground

    @property
    def label(self) -> int:
        """The clip's class: the index of its camera motion in CAMERA_MOTIONS."""
        return CAMERA_MOTIONS.index(self.camera.motion)


def _color_pair(rng: np.random.Generator) -> np.ndarray:
    """Two clearly different colours in [0, 1], shape [2, 3]."""
    first = rng.uniform(0.15, 0.95, size=3)
    second = np.clip(1.0 - first + rng.uniform(-0.15, 0.15, size=3), 0.05, 1.0)
    return np.stack([first, second])


def _sample_body(rng: np.random.Generator, shape: str) -> Body:
    if shape == "sphere":
        half_size = np.full(3, rng.uniform(0.5, 1.0))
    elif shape == "box":
        half_size = rng.uniform(0.35, 0.8, size=3)
    else:
        radius, half_height = rng.uniform(0.35, 0.7), rng.uniform(0.4, 0.9)
        half_size = np.array([radius, half_height, radius])
    reach = float(np.sqrt(np.sum(half_size**2)))  # the body never dips into the ground
    return Body(
        shape=shape,
        half_size=half_size,
        start=np.array([rng.uniform(-2.5, 2.5), reach, rng.uniform(-2.5, 2.5)]),
        velocity=np.array([rng.uniform(-1.0, 1.0), 0.0, rng.uniform(-1.0, 1.0)]),
        bounce=float(rng.uniform(0.0, 0.6)),
        axis=_unit(rng.normal(size=3)),
        spin=float(rng.uniform(-2.5, 2.5)),
        colors=_color_pair(rng),
        checker=float(rng.uniform(2.0, 4.0)),
    )


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


def _sample_camera(rng: np.random.Generator) -> CameraPath:
    motion = CAMERA_MOTIONS[int(rng.integers(len(CAMERA_MOTIONS)))]
    sign = float(rng.choice([-1.0, 1.0]))
    return CameraPath(
        motion=motion,
        target=np.array([rng.uniform(-0.5, 0.5), 0.5, rng.uniform(-0.5, 0.5)]),
        radius=float(rng.uniform(5.0, 7.0)),
        height=float(rng.uniform(1.5, 4.0)),
        angle0=float(rng.uniform(0.0, 2.0 * math.pi)),
        angular_speed=sign * float(rng.uniform(0.25, 0.5)) if motion == "orbit" else 0.0,
        dolly=sign * float(rng.uniform(0.5, 0.9)) if motion == "dolly" else 0.0,
        pan=sign * float(rng.uniform(0.15, 0.3)) if motion == "pan" else 0.0,
        fov_degrees=float(rng.uniform(50.0, 70.0)),
    )


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a random scene: 2..MAX_BODIES bodies, a camera motion, and the tracked points."""
    count = int(rng.integers(2, MAX_BODIES + 1))
    bodies = tuple(_sample_body(rng, SHAPES[int(rng.integers(len(SHAPES)))]) for _ in range(count))
    camera = _sample_camera(rng)
    ground = np.stack(
        [np.array([rng.uniform(-4, 4), 0.0, rng.uniform(-4, 4)]) for _ in range(GROUND_TRACKS)]
    )
    owners = [index % count for index in range(TRACKS_PER_CLIP - GROUND_TRACKS)]
    on_bodies = np.stack([_surface_point(rng, bodies[owner]) for owner in owners])
    return Scene(
        bodies=bodies,
        camera=camera,
        ground_colors=_color_pair(rng),
        ground_tile=float(rng.uniform(1.2, 2.5)),
        sky_colors=np.stack([rng.uniform(0.5, 0.9, 3), rng.uniform(0.1, 0.5, 3)]),
        track_points=np.concatenate([ground, on_bodies]),
        track_body=np.array([0] * GROUND_TRACKS + [owner + 1 for owner in owners]),
    )
