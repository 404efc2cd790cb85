"""Procedural 4D scenes: what is in the world and how it moves.

A scene is a textured ground plane (y = 0, y points up), a textured sky dome that closes the
world (so every pixel has a finite depth), a few textured spheres with independent rigid motion
(translation and spin), and a camera that orbits the scene while bobbing in height. Everything
is a pure function of a `numpy.random.Generator`, so a seed fixes the whole clip.

Camera convention (OpenCV): x right, y down, z forward; extrinsics map world to camera.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

DOME_RADIUS = 30.0


@dataclasses.dataclass(frozen=True)
class Sphere:
    """A textured sphere: centre(t) = start + velocity * t + bounce, spinning about the y axis."""

    start: np.ndarray  # [3] world position at t = 0 (metres)
    velocity: np.ndarray  # [3] metres per second
    bounce: float  # vertical oscillation amplitude (metres)
    radius: float
    spin: float  # radians per second about the object's y axis
    colors: np.ndarray  # [2, 3] the two texture colours in [0, 1]
    stripes: int  # texture frequency

    def center(self, time: float) -> np.ndarray:
        position = self.start + self.velocity * time
        position[1] = self.radius + self.bounce * abs(np.sin(2.0 * time))
        return position


def _dot3(a: np.ndarray, b: np.ndarray) -> float:
    """Dot product of two 3-vectors, summed in a fixed order (see fourds.world.render)."""
    return float(a[0]) * float(b[0]) + float(a[1]) * float(b[1]) + float(a[2]) * float(b[2])


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / math.sqrt(_dot3(vector, vector))


@dataclasses.dataclass(frozen=True)
class CameraPath:
    """An orbit around `target` with a slowly changing radius and height."""

    target: np.ndarray  # [3]
    radius: float
    height: float
    angle0: float
    angular_speed: float  # radians per second
    dolly: float  # radius change, metres per second
    fov_degrees: float

    def extrinsics(self, time: float) -> np.ndarray:
        """World-to-camera matrix [4, 4] at `time` (OpenCV axes)."""
        angle = self.angle0 + self.angular_speed * time
        radius = self.radius + self.dolly * time
        eye = self.target + np.array(
            [radius * np.cos(angle), self.height + 0.3 * np.sin(time), radius * np.sin(angle)]
        )
        forward = _unit(self.target - eye)
        right = _unit(np.cross(forward, np.array([0.0, 1.0, 0.0])))
        down = np.cross(forward, right)
        rotation = np.stack([right, down, forward])  # rows: camera axes in world coordinates
        world_to_camera = np.eye(4)
        world_to_camera[:3, :3] = rotation
        world_to_camera[:3, 3] = [-_dot3(row, eye) for row in rotation]
        return world_to_camera

    def intrinsics(self, height: int, width: int) -> np.ndarray:
        """Pinhole matrix [3, 3] in pixels for an image of `height` x `width`."""
        focal = 0.5 * width / np.tan(np.radians(self.fov_degrees) / 2.0)
        return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


@dataclasses.dataclass(frozen=True)
class Scene:
    """Everything needed to render one clip."""

    spheres: tuple[Sphere, ...]
    camera: CameraPath
    ground_colors: np.ndarray  # [2, 3]
    ground_tile: float  # metres per checker tile
    sky_colors: np.ndarray  # [2, 3] horizon and zenith


def _color_pair(rng: np.random.Generator) -> np.ndarray:
    """Two clearly different colours in [0, 1], shape [2, 3]."""
    first = rng.uniform(0.15, 0.95, size=3)
    second = np.clip(1.0 - first + rng.uniform(-0.15, 0.15, size=3), 0.05, 1.0)
    return np.stack([first, second])


def sample_scene(rng: np.random.Generator, max_objects: int = 4) -> Scene:
    """Draw a random scene: 2..max_objects spheres and an orbiting camera."""
    count = int(rng.integers(2, max_objects + 1))
    spheres = []
    for _ in range(count):
        radius = float(rng.uniform(0.5, 1.1))
        spheres.append(
            Sphere(
                start=np.array([rng.uniform(-2.5, 2.5), radius, rng.uniform(-2.5, 2.5)]),
                velocity=np.array([rng.uniform(-1.0, 1.0), 0.0, rng.uniform(-1.0, 1.0)]),
                bounce=float(rng.uniform(0.0, 0.8)),
                radius=radius,
                spin=float(rng.uniform(-3.0, 3.0)),
                colors=_color_pair(rng),
                stripes=int(rng.integers(3, 8)),
            )
        )
    camera = CameraPath(
        target=np.array([rng.uniform(-0.5, 0.5), 0.5, rng.uniform(-0.5, 0.5)]),
        radius=float(rng.uniform(4.5, 6.5)),
        height=float(rng.uniform(1.5, 4.0)),
        angle0=float(rng.uniform(0.0, 2.0 * np.pi)),
        angular_speed=float(rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 0.5)),
        dolly=float(rng.uniform(-0.8, 0.8)),
        fov_degrees=float(rng.uniform(50.0, 70.0)),
    )
    return Scene(
        spheres=tuple(spheres),
        camera=camera,
        ground_colors=_color_pair(rng),
        ground_tile=float(rng.uniform(1.2, 2.5)),
        sky_colors=np.stack([rng.uniform(0.5, 0.9, 3), rng.uniform(0.1, 0.5, 3)]),
    )
