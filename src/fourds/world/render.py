"""Ray casting of a `Scene` into frames with exact ground truth.

One ray per pixel centre. Rays are written in camera coordinates with unit z component,
so the ray parameter at a hit *is* the z-depth that depth benchmarks (ScanNet) store.

Per-pixel work uses only +, -, *, /, sqrt and floor, which IEEE arithmetic rounds exactly:
vectorised sin/atan2 and BLAS/SIMD reductions can differ in the last bit with threads or
memory alignment, and one bit can flip a texture edge or a rounded pixel, so the corpus would
not re-render byte for byte.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from fourds.world.scene import DOME_RADIUS, Scene

LIGHT_DIRECTION = np.array([0.4, 0.8, 0.3]) / math.sqrt(0.4**2 + 0.8**2 + 0.3**2)


@dataclasses.dataclass(frozen=True)
class Rendering:
    """A rendered clip and its ground truth.

    Attributes:
        video: [T, H, W, 3] uint8 frames.
        depth: [T, H, W] float32 z-depth in metres (every pixel valid).
        intrinsics: [T, 3, 3] float64 pinhole matrices in pixels.
        extrinsics: [T, 4, 4] float64 world-to-camera matrices (OpenCV axes).
    """

    video: np.ndarray
    depth: np.ndarray
    intrinsics: np.ndarray
    extrinsics: np.ndarray


def _camera_rays(intrinsics: np.ndarray, height: int, width: int) -> np.ndarray:
    """Ray directions [H*W, 3] in camera coordinates with z = 1."""
    v, u = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    x = (u - intrinsics[0, 2]) / intrinsics[0, 0]
    y = (v - intrinsics[1, 2]) / intrinsics[1, 1]
    return np.stack([x, y, np.ones_like(x)], axis=-1).reshape(-1, 3)


def _dot(vectors: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Row-wise dot products [N, 3] x [3] or [N, 3] -> [N], in a fixed order of operations."""
    return (
        vectors[:, 0] * other[..., 0]
        + vectors[:, 1] * other[..., 1]
        + vectors[:, 2] * other[..., 2]
    )


def _checker(*coordinates: np.ndarray) -> np.ndarray:
    """Checker parity (0 or 1) of unit cells over surface coordinates, each [N] -> [N] int."""
    return sum(np.floor(c).astype(np.int64) for c in coordinates) % 2


def _shade(albedo: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Lambertian shading with ambient light: albedo [N, 3], unit normals [N, 3]."""
    diffuse = np.clip(_dot(normal, LIGHT_DIRECTION), 0.0, 1.0)[:, None]
    return albedo * (0.45 + 0.55 * diffuse)


def render_frame(scene: Scene, time: float, intrinsics: np.ndarray, height: int, width: int):
    """Render one frame.

    Returns:
        rgb [H, W, 3] float in [0, 1], depth [H, W] float, world_to_camera [4, 4].
    """
    world_to_camera = scene.camera.extrinsics(time)
    rotation, translation = world_to_camera[:3, :3], world_to_camera[:3, 3]
    origin = -_dot(rotation.T, translation)  # camera centre in world coordinates
    rays = _camera_rays(intrinsics, height, width)
    directions = np.stack([_dot(rays, rotation[:, axis]) for axis in range(3)], axis=-1)  # world

    # Sky dome: the far root of |origin + t d| = R (origin is inside the dome).
    a = _dot(directions, directions)
    b = 2.0 * _dot(directions, origin)
    c = _dot(origin[None], origin)[0] - DOME_RADIUS**2
    depth = (-b + np.sqrt(b * b - 4.0 * a * c)) / (2.0 * a)
    hit = origin + depth[:, None] * directions
    elevation = np.clip(hit[:, 1] / DOME_RADIUS, 0.0, 1.0)[:, None]
    sky = (1.0 - elevation) * scene.sky_colors[0] + elevation * scene.sky_colors[1]
    rgb = sky * (0.85 + 0.15 * _checker(hit[:, 0] / 6.0, hit[:, 2] / 6.0))[:, None]

    # Ground plane y = 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = -origin[1] / directions[:, 1]
    ground = (t_ground > 0) & (t_ground < depth)
    if ground.any():
        point = origin + t_ground[ground, None] * directions[ground]
        tile = scene.ground_tile
        albedo = scene.ground_colors[_checker(point[:, 0] / tile, point[:, 2] / tile)]
        up = np.broadcast_to(np.array([0.0, 1.0, 0.0]), point.shape)
        rgb[ground] = _shade(albedo, up)
        depth[ground] = t_ground[ground]

    # Spheres, nearest hit wins.
    for sphere in scene.spheres:
        center = sphere.center(time)
        offset = origin - center
        b = 2.0 * _dot(directions, offset)
        c = _dot(offset[None], offset)[0] - sphere.radius**2
        disc = b * b - 4.0 * a * c
        with np.errstate(invalid="ignore"):
            t_hit = (-b - np.sqrt(disc)) / (2.0 * a)
        hit_mask = (disc > 0) & (t_hit > 0) & (t_hit < depth)
        if not hit_mask.any():
            continue
        point = origin + t_hit[hit_mask, None] * directions[hit_mask]
        normal = (point - center) / sphere.radius
        # The texture is fixed to the body: a 3D checker of the normal rotated back by the spin.
        cos, sin = math.cos(sphere.spin * time), math.sin(sphere.spin * time)
        x = cos * normal[:, 0] + sin * normal[:, 2]
        z = cos * normal[:, 2] - sin * normal[:, 0]
        scale = sphere.stripes / 2.0
        albedo = sphere.colors[_checker(x * scale, normal[:, 1] * scale, z * scale)]
        rgb[hit_mask] = _shade(albedo, normal)
        depth[hit_mask] = t_hit[hit_mask]

    return (
        np.clip(rgb, 0.0, 1.0).reshape(height, width, 3),
        depth.reshape(height, width),
        world_to_camera,
    )


def render_clip(
    scene: Scene, frames: int, height: int, width: int, fps: float, supersample: int = 2
) -> Rendering:
    """Render `frames` frames at `fps` of `scene` with ground truth (see `Rendering`).

    Colours are averaged over `supersample` x `supersample` rays per pixel (anti-aliasing, so
    that the lossy codec sees what a camera would); depth is the ray through the pixel centre.
    """
    intrinsics = scene.camera.intrinsics(height, width)
    fine_intrinsics = scene.camera.intrinsics(height * supersample, width * supersample)
    video = np.empty((frames, height, width, 3), np.uint8)
    depth = np.empty((frames, height, width), np.float32)
    extrinsics = np.empty((frames, 4, 4))
    for index in range(frames):
        time = index / fps
        _, depth[index], extrinsics[index] = render_frame(scene, time, intrinsics, height, width)
        fine_rgb, _, _ = render_frame(
            scene, time, fine_intrinsics, height * supersample, width * supersample
        )
        blocks = fine_rgb.reshape(height, supersample, width, supersample, 3)
        rgb = sum(blocks[:, i, :, j] for i in range(supersample) for j in range(supersample))
        rgb = rgb / supersample**2
        video[index] = np.round(rgb * 255.0).astype(np.uint8)
    return Rendering(
        video=video,
        depth=depth,
        intrinsics=np.broadcast_to(intrinsics, (frames, 3, 3)).copy(),
        extrinsics=extrinsics,
    )
