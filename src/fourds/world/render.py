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

from fourds.world.scene import DOME_RADIUS, MAX_BODIES, Body, Scene, _dot3

LIGHT_DIRECTION = np.array([0.4, 0.8, 0.3]) / math.sqrt(0.4**2 + 0.8**2 + 0.3**2)


@dataclasses.dataclass(frozen=True)
class Rendering:
    """A rendered clip and its ground truth (pixel positions are raster coordinates: (0, 0) is
    the top-left corner of the top-left pixel, x right, y down).

    Attributes:
        video: [T, H, W, 3] uint8 frames.
        depth: [T, H, W] float32 z-depth in metres (every pixel valid).
        instances: [T, H, W] uint8: 1 + index of the body seen at each pixel, 0 for background.
        intrinsics: [T, 3, 3] float64 pinhole matrices in pixels.
        extrinsics: [T, 4, 4] float64 world-to-camera matrices (OpenCV axes).
        tracks: [N, T, 2] float32 (x, y) projections of the scene's tracked surface points.
        visible: [N, T] bool: the point is in view and nothing nearer covers it (also not the
            far side of its own body).
        track_instance: [N] uint8: the point's body (1 + index), 0 for the ground.
        boxes: [MAX_BODIES, T, 4] float32 (x0, y0, x1, y1) box of each body's visible pixels;
            NaN where it is not visible or the scene has fewer bodies.
        box_visible: [MAX_BODIES, T] bool.
        label: the clip's class (index of the camera motion in CAMERA_MOTIONS).
    """

    video: np.ndarray
    depth: np.ndarray
    instances: np.ndarray
    intrinsics: np.ndarray
    extrinsics: np.ndarray
    tracks: np.ndarray
    visible: np.ndarray
    track_instance: np.ndarray
    boxes: np.ndarray
    box_visible: np.ndarray
    label: int


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


def _to_body(body: Body, time: float, origin: np.ndarray, directions: np.ndarray):
    """Ray origin [3] and directions [N, 3] in the body's coordinates at `time`.

    Returns (body-to-world rotation [3, 3], origin [3], directions [N, 3]).
    """
    rotation = body.rotation(time)
    offset = origin - body.center(time)
    local_origin = np.array([_dot3(offset, rotation[:, k]) for k in range(3)])
    local = np.stack([_dot(directions, rotation[:, k]) for k in range(3)], axis=-1)
    return rotation, local_origin, local


def _intersect(body: Body, origin: np.ndarray, directions: np.ndarray):
    """Nearest positive hit of rays with a body, in body coordinates.

    Returns t [N] (inf where missed) and body-frame unit normals [N, 3] at the hits.
    """
    size = body.half_size
    count = len(directions)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if body.shape == "sphere":
            a = _dot(directions, directions)
            b = 2.0 * _dot(directions, origin)
            c = _dot3(origin, origin) - size[0] ** 2
            disc = b * b - 4.0 * a * c
            t = np.where(disc > 0, (-b - np.sqrt(disc)) / (2.0 * a), np.inf)
            t = np.where(t > 0, t, np.inf)
            normal = (origin + t[:, None] * directions) / size[0]
            return t, normal
        if body.shape == "box":
            near = np.full(count, -np.inf)
            far = np.full(count, np.inf)
            for k in range(3):
                first = (-size[k] - origin[k]) / directions[:, k]
                second = (size[k] - origin[k]) / directions[:, k]
                near = np.maximum(near, np.minimum(first, second))
                far = np.minimum(far, np.maximum(first, second))
            t = np.where((near <= far) & (near > 0), near, np.inf)
            point = origin + np.where(np.isfinite(t), t, 0.0)[:, None] * directions
            face = np.argmax(np.abs(point) / size, axis=1)
            normal = np.zeros((count, 3))
            normal[np.arange(count), face] = np.sign(point[np.arange(count), face])
            return t, normal
        # Cylinder about the body's y axis: the side, then the two caps.
        radius, half_height = size[0], size[1]
        a = directions[:, 0] * directions[:, 0] + directions[:, 2] * directions[:, 2]
        b = 2.0 * (directions[:, 0] * origin[0] + directions[:, 2] * origin[2])
        c = origin[0] * origin[0] + origin[2] * origin[2] - radius * radius
        disc = b * b - 4.0 * a * c
        side = np.where(disc > 0, (-b - np.sqrt(disc)) / (2.0 * a), np.inf)
        side_y = origin[1] + side * directions[:, 1]
        side = np.where((side > 0) & (np.abs(side_y) <= half_height), side, np.inf)
        t, on_side = side, np.isfinite(side)
        for cap in (-half_height, half_height):
            t_cap = (cap - origin[1]) / directions[:, 1]
            x = origin[0] + t_cap * directions[:, 0]
            z = origin[2] + t_cap * directions[:, 2]
            hit = (t_cap > 0) & (x * x + z * z <= radius * radius) & (t_cap < t)
            t = np.where(hit, t_cap, t)
            on_side = on_side & ~hit
        point = origin + np.where(np.isfinite(t), t, 0.0)[:, None] * directions
        normal = np.zeros((count, 3))
        normal[:, 0] = np.where(on_side, point[:, 0] / radius, 0.0)
        normal[:, 2] = np.where(on_side, point[:, 2] / radius, 0.0)
        normal[:, 1] = np.where(on_side, 0.0, np.sign(point[:, 1]))
        return t, normal


def render_frame(scene: Scene, time: float, intrinsics: np.ndarray, height: int, width: int):
    """Render one frame.

    Returns:
        rgb [H, W, 3] float in [0, 1], depth [H, W] float, instances [H, W] uint8,
        world_to_camera [4, 4].
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
    instances = np.zeros(len(rays), np.uint8)

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

    # Bodies, nearest hit wins; the texture is a checker of body coordinates.
    for index, body in enumerate(scene.bodies):
        body_rotation, local_origin, local = _to_body(body, time, origin, directions)
        t_hit, normal = _intersect(body, local_origin, local)
        hit_mask = t_hit < depth
        if not hit_mask.any():
            continue
        point = local_origin + t_hit[hit_mask, None] * local[hit_mask]
        cells = point * body.checker
        albedo = body.colors[_checker(cells[:, 0], cells[:, 1], cells[:, 2])]
        world_normal = np.stack([_dot(normal[hit_mask], body_rotation[k]) for k in range(3)], -1)
        rgb[hit_mask] = _shade(albedo, world_normal)
        depth[hit_mask] = t_hit[hit_mask]
        instances[hit_mask] = index + 1

    return (
        np.clip(rgb, 0.0, 1.0).reshape(height, width, 3),
        depth.reshape(height, width),
        instances.reshape(height, width),
        world_to_camera,
    )


def _track_frame(
    scene: Scene,
    time: float,
    intrinsics: np.ndarray,
    world_to_camera: np.ndarray,
    depth: np.ndarray,
    instances: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Projections [N, 2] of the tracked points at `time` and whether each is visible [N].

    A point is visible when it projects into the image in front of the camera, the pixel it
    falls in shows its own body (or the ground), and that pixel's depth is not nearer than the
    point by more than a small tolerance (which hides the far side of its own body).
    """
    points = scene.track_points.copy()
    for index, body in enumerate(scene.bodies):
        mine = scene.track_body == index + 1
        center, rotation = body.center(time), body.rotation(time)
        local = points[mine]
        points[mine] = center + sum(local[:, k, None] * rotation[:, k] for k in range(3))
    rotation, translation = world_to_camera[:3, :3], world_to_camera[:3, 3]
    camera = np.stack([_dot(points, rotation[k]) + translation[k] for k in range(3)], axis=-1)
    z = camera[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = intrinsics[0, 0] * camera[:, 0] / z + intrinsics[0, 2]
        y = intrinsics[1, 1] * camera[:, 1] / z + intrinsics[1, 2]
    height, width = depth.shape
    inside = (z > 0) & (x >= 0) & (x < width) & (y >= 0) & (y < height)
    rows = np.clip(np.floor(np.where(inside, y, 0)).astype(np.int64), 0, height - 1)
    cols = np.clip(np.floor(np.where(inside, x, 0)).astype(np.int64), 0, width - 1)
    seen_depth = depth[rows, cols]
    unobstructed = seen_depth >= z - np.maximum(0.05, 0.03 * z)
    visible = inside & (instances[rows, cols] == scene.track_body) & unobstructed
    return np.stack([x, y], axis=-1), visible


def _boxes(instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes [MAX_BODIES, 4] (x0, y0, x1, y1; pixel edges) of each body's visible pixels."""
    boxes = np.full((MAX_BODIES, 4), np.nan)
    for index in range(MAX_BODIES):
        rows, cols = np.nonzero(instances == index + 1)
        if len(rows):
            boxes[index] = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
    return boxes, ~np.isnan(boxes[:, 0])


def render_clip(
    scene: Scene, frames: int, height: int, width: int, fps: float, supersample: int = 2
) -> Rendering:
    """Render `frames` frames at `fps` of `scene` with ground truth (see `Rendering`).

    Colours are averaged over `supersample` x `supersample` rays per pixel (anti-aliasing, so
    that the lossy codec sees what a camera would); depth, instances, visibility and boxes come
    from the ray through each pixel centre.
    """
    intrinsics = scene.camera.intrinsics(height, width)
    fine_intrinsics = scene.camera.intrinsics(height * supersample, width * supersample)
    video = np.empty((frames, height, width, 3), np.uint8)
    depth = np.empty((frames, height, width), np.float32)
    instances = np.empty((frames, height, width), np.uint8)
    extrinsics = np.empty((frames, 4, 4))
    tracks = np.empty((len(scene.track_points), frames, 2), np.float32)
    visible = np.empty((len(scene.track_points), frames), bool)
    boxes = np.empty((MAX_BODIES, frames, 4), np.float32)
    box_visible = np.empty((MAX_BODIES, frames), bool)
    for index in range(frames):
        time = index / fps
        _, frame_depth, frame_instances, world_to_camera = render_frame(
            scene, time, intrinsics, height, width
        )
        depth[index], instances[index] = frame_depth, frame_instances
        extrinsics[index] = world_to_camera
        tracks[:, index], visible[:, index] = _track_frame(
            scene, time, intrinsics, world_to_camera, frame_depth, frame_instances
        )
        boxes[:, index], box_visible[:, index] = _boxes(frame_instances)
        fine_rgb, _, _, _ = render_frame(
            scene, time, fine_intrinsics, height * supersample, width * supersample
        )
        blocks = fine_rgb.reshape(height, supersample, width, supersample, 3)
        rgb = sum(blocks[:, i, :, j] for i in range(supersample) for j in range(supersample))
        rgb = rgb / supersample**2
        video[index] = np.round(rgb * 255.0).astype(np.uint8)
    return Rendering(
        video=video,
        depth=depth,
        instances=instances,
        intrinsics=np.broadcast_to(intrinsics, (frames, 3, 3)).copy(),
        extrinsics=extrinsics,
        tracks=tracks,
        visible=visible,
        track_instance=scene.track_body.astype(np.uint8),
        boxes=boxes,
        box_visible=box_visible,
        label=scene.label,
    )
