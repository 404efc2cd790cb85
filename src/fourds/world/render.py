"""Ray casting of a `Scene` into shaded frames with exact ground truth.

One ray per pixel centre. Rays are written in camera coordinates with unit z component,
so the ray parameter at a hit *is* the z-depth that depth benchmarks (ScanNet) store.

Shading: each surface's albedo is its smooth texture (fourds.world.noise); the ground and the
bodies are lit by the scene's sun (Lambertian, with a Blinn-Phong highlight on shiny bodies)
plus ambient light, and a shadow ray towards the sun decides whether another body hides it,
so bodies cast shadows on the ground and on each other. The sky is unlit: a gradient from
horizon to zenith with soft clouds of the same noise.

Per-pixel work uses only +, -, *, /, sqrt and floor, which IEEE arithmetic rounds exactly,
plus integer and/multiply/add and table look-ups (the noise lattice), which are exact: vectorised
sin/exp/pow/atan2 and BLAS/SIMD reductions can differ in the last bit with threads or memory
alignment, and one bit can flip a rounded pixel, so the corpus would not re-render byte for
byte. Powers are repeated squaring; per-scene scalars may use math.*.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fourds.config.world_levels import MAX_BODIES
from fourds.world.noise import fractal_noise
from fourds.world.scene import DOME_RADIUS, Body, Scene

HIGHLIGHT_SQUARINGS = 5  # the highlight is (n . h) ** (2 ** 5)
SKY, GROUND = -1, 0  # surface ids besides 1 + body index
# Rays traced together: bounds the memory of the per-ray temporaries for any frame size.
# Speed is about the same from 2048 rays to whole 128 x 128 frames (measured).
RAY_BLOCK = 4096


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
        label: the clip's class: the name of its camera motion (e.g. "orbit"; see
            fourds.world.scene.CAMERA_MOTIONS).
        body_kind: [MAX_BODIES] int16: each body's kind in a catalog world
            (fourds.world.catalog), -1 for none (a continuous world, or no body in the slot).
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
    label: str
    body_kind: np.ndarray


def _camera_rays(intrinsics: np.ndarray, height: int, width: int) -> np.ndarray:
    """Ray directions [H*W, 3] in camera coordinates with z = 1."""
    v, u = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    x = (u - intrinsics[0, 2]) / intrinsics[0, 0]
    y = (v - intrinsics[1, 2]) / intrinsics[1, 1]
    return np.stack([x, y, np.ones_like(x)], axis=-1).reshape(-1, 3)


def _dot(vectors: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Dot products over the last axis ([..., 3] x [..., 3], broadcast), in a fixed order of
    operations."""
    return (
        vectors[..., 0] * other[..., 0]
        + vectors[..., 1] * other[..., 1]
        + vectors[..., 2] * other[..., 2]
    )


def _normalize(vectors: np.ndarray) -> np.ndarray:
    """Unit vectors [N, 3] along vectors [N, 3]."""
    return vectors / np.sqrt(_dot(vectors, vectors))[:, None]


def _to_body(body: Body, time: float, origin: np.ndarray, directions: np.ndarray):
    """Ray origins and directions (each [3] or [N, 3]) in the body's coordinates at `time`.

    Returns (body-to-world rotation [3, 3], origins, directions) with the input shapes.
    """
    rotation = body.rotation(time)
    offset = origin - body.center(time)
    local_origin = np.stack([_dot(offset, rotation[:, k]) for k in range(3)], axis=-1)
    local = np.stack([_dot(directions, rotation[:, k]) for k in range(3)], axis=-1)
    return rotation, local_origin, local


def _may_hit(body: Body, time: float, origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Whether rays (origin [3] or [N, 3], directions [N, 3] or [3]) pass through the body's
    bounding sphere for some t > 0 -> [N] bool: a cheap test that skips the exact
    intersection for rays that cannot hit. The sphere is padded well beyond rounding error,
    so no hit is missed and skipping changes no result."""
    radius = 1.001 * body.reach + 1e-6
    offset = body.center(time) - origin  # [3] or [N, 3]
    length2 = _dot(directions, directions)
    along = _dot(directions, offset)
    distance2 = _dot(offset, offset)
    # Squared distance from the centre to the line, times |d|^2: |w|^2 |d|^2 - (d . w)^2.
    passes = distance2 * length2 - along * along <= radius * radius * length2
    return passes & ((along > 0) | (distance2 <= radius * radius))


def _intersect(body: Body, origin: np.ndarray, directions: np.ndarray, normals: bool = True):
    """Nearest positive hit of rays with a body, in body coordinates.

    Args:
        origin: [3] one origin for all rays, or [N, 3].
        directions: [N, 3], or [3] one direction for all rays.
        normals: also return the normals (shadow rays need only t).

    Returns t [N] (inf where missed) and body-frame unit normals [N, 3] at the hits (None
    when not `normals`).
    """
    origin, directions = np.broadcast_arrays(origin, directions)
    size = body.half_size
    count = len(directions)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if body.shape == "sphere":
            a = _dot(directions, directions)
            b = 2.0 * _dot(directions, origin)
            c = _dot(origin, origin) - size[0] ** 2
            disc = b * b - 4.0 * a * c
            t = np.where(disc > 0, (-b - np.sqrt(disc)) / (2.0 * a), np.inf)
            t = np.where(t > 0, t, np.inf)
            if not normals:
                return t, None
            return t, (origin + t[:, None] * directions) / size[0]
        if body.shape == "box":
            near = np.full(count, -np.inf)
            far = np.full(count, np.inf)
            for k in range(3):
                first = (-size[k] - origin[:, k]) / directions[:, k]
                second = (size[k] - origin[:, k]) / directions[:, k]
                near = np.maximum(near, np.minimum(first, second))
                far = np.minimum(far, np.maximum(first, second))
            t = np.where((near <= far) & (near > 0), near, np.inf)
            if not normals:
                return t, None
            point = origin + np.where(np.isfinite(t), t, 0.0)[:, None] * directions
            face = np.argmax(np.abs(point) / size, axis=1)
            normal = np.zeros((count, 3))
            normal[np.arange(count), face] = np.sign(point[np.arange(count), face])
            return t, normal
        # Cylinder about the body's y axis: the side, then the two caps.
        radius, half_height = size[0], size[1]
        dx, dy, dz = directions[:, 0], directions[:, 1], directions[:, 2]
        ox, oy, oz = origin[:, 0], origin[:, 1], origin[:, 2]
        a = dx * dx + dz * dz
        b = 2.0 * (dx * ox + dz * oz)
        c = ox * ox + oz * oz - radius * radius
        disc = b * b - 4.0 * a * c
        side = np.where(disc > 0, (-b - np.sqrt(disc)) / (2.0 * a), np.inf)
        side_y = oy + side * dy
        side = np.where((side > 0) & (np.abs(side_y) <= half_height), side, np.inf)
        t, on_side = side, np.isfinite(side)
        for cap in (-half_height, half_height):
            t_cap = (cap - oy) / dy
            x = ox + t_cap * dx
            z = oz + t_cap * dz
            hit = (t_cap > 0) & (x * x + z * z <= radius * radius) & (t_cap < t)
            t = np.where(hit, t_cap, t)
            on_side = on_side & ~hit
        if not normals:
            return t, None
        point = origin + np.where(np.isfinite(t), t, 0.0)[:, None] * directions
        normal = np.zeros((count, 3))
        normal[:, 0] = np.where(on_side, point[:, 0] / radius, 0.0)
        normal[:, 2] = np.where(on_side, point[:, 2] / radius, 0.0)
        normal[:, 1] = np.where(on_side, 0.0, np.sign(point[:, 1]))
        return t, normal


def _colors(
    scene: Scene, surface: np.ndarray, coordinates: np.ndarray, dome: np.ndarray
) -> np.ndarray:
    """Unlit colours [N, 3]: each surface's texture, and the sky (a ramp from horizon to
    zenith with soft clouds), evaluated in one noise call for all rays.

    Args:
        surface: [N] SKY, GROUND or 1 + body index; coordinates: [N, 3] texture coordinates
            (world on the ground, body coordinates on bodies); dome: [N, 3] unit directions
            from the dome's centre (used for the sky).
    """
    lattice_points = np.empty_like(coordinates)
    low, high = np.empty_like(coordinates), np.empty_like(coordinates)
    textures = [(SKY, scene.sky), (GROUND, scene.ground)]
    textures += [(index + 1, body.texture) for index, body in enumerate(scene.bodies)]
    for surface_id, texture in textures:
        mine = surface == surface_id
        at = dome[mine] if surface_id == SKY else coordinates[mine]
        lattice_points[mine] = at * texture.frequency + texture.offset
        low[mine], high[mine] = texture.colors
    value = fractal_noise(scene.lattice, lattice_points)
    sky = surface == SKY
    elevation = np.sqrt(np.clip(dome[sky, 1], 0.0, 1.0))
    value[sky] = np.clip(0.85 * elevation + 0.6 * (value[sky] - 0.5), 0.0, 1.0)
    return low + value[:, None] * (high - low)


def _in_shadow(scene: Scene, time: float, points: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """Whether another body blocks the sun from each world point [N] ([N, 3] points on
    `surface` [N]: GROUND or 1 + body index). Bodies are convex, so a body never shadows
    itself along a ray that leaves its surface towards the light: it is skipped."""
    shadowed = np.zeros(len(points), bool)
    light = scene.light.direction
    for index, body in enumerate(scene.bodies):
        near = np.flatnonzero((surface != index + 1) & _may_hit(body, time, points, light))
        if not len(near):
            continue
        _, local_origin, local_light = _to_body(body, time, points[near], light)
        t, _ = _intersect(body, local_origin, local_light, normals=False)
        shadowed[near] |= np.isfinite(t)
    return shadowed


def _shade(
    scene: Scene,
    time: float,
    albedo: np.ndarray,
    points: np.ndarray,
    normals: np.ndarray,
    rays: np.ndarray,
    surface: np.ndarray,
    shine: np.ndarray,
) -> np.ndarray:
    """Lit colours [N, 3]: ambient + sun (Lambertian, cast shadows) + highlight.

    Args:
        albedo: [N, 3]; points: [N, 3] world; normals: [N, 3] unit, world; rays: [N, 3]
            directions of the camera rays that hit the points; surface: [N] GROUND or 1 + body
            index; shine: [N] highlight strength.
    """
    light = scene.light
    facing = np.clip(_dot(normals, light.direction), 0.0, 1.0)
    lit = facing > 0
    sun = np.zeros(len(points))
    sun[lit] = light.intensity * np.where(
        _in_shadow(scene, time, points[lit], surface[lit]), 0.0, 1.0
    )
    color = albedo * (light.ambient + sun * facing)[:, None]
    glossy = (shine > 0) & (sun > 0)
    if glossy.any():
        views = _normalize(-rays[glossy])
        halfway = _normalize(views + light.direction)
        highlight = np.clip(_dot(normals[glossy], halfway), 0.0, 1.0)
        for _ in range(HIGHLIGHT_SQUARINGS):
            highlight = highlight * highlight
        color[glossy] += (shine[glossy] * sun[glossy] * highlight)[:, None]
    return color


def _cast(scene: Scene, time: float, origin: np.ndarray, directions: np.ndarray, shade: bool):
    """Trace rays from the camera centre `origin` [3] along world `directions` [N, 3].

    Returns rgb [N, 3] in [0, 1] (None without `shade`), depth [N] and instances [N] uint8.
    """
    count = len(directions)

    # Sky dome: the far root of |origin + t d| = R (origin is inside the dome).
    a = _dot(directions, directions)
    b = 2.0 * _dot(directions, origin)
    c = _dot(origin, origin) - DOME_RADIUS**2
    depth = (-b + np.sqrt(b * b - 4.0 * a * c)) / (2.0 * a)
    dome = (origin + depth[:, None] * directions) / DOME_RADIUS
    instances = np.zeros(count, np.uint8)
    surface = np.full(count, SKY)
    normals = np.zeros((count, 3))
    coordinates = np.zeros((count, 3))  # texture coordinates: world (ground), body (bodies)

    # Ground plane y = 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = -origin[1] / directions[:, 1]
    ground = (t_ground > 0) & (t_ground < depth)
    depth[ground] = t_ground[ground]
    surface[ground] = GROUND
    normals[ground] = [0.0, 1.0, 0.0]
    coordinates[ground] = origin + t_ground[ground, None] * directions[ground]

    # Bodies, nearest hit wins; only rays that pass the body's bounding sphere are cast.
    for index, body in enumerate(scene.bodies):
        near = np.flatnonzero(_may_hit(body, time, origin, directions))
        if not len(near):
            continue
        body_rotation, local_origin, local = _to_body(body, time, origin, directions[near])
        t_hit, normal = _intersect(body, local_origin, local)
        hit = t_hit < depth[near]
        rays_hit = near[hit]
        depth[rays_hit] = t_hit[hit]
        instances[rays_hit] = index + 1
        surface[rays_hit] = index + 1
        coordinates[rays_hit] = local_origin + t_hit[hit, None] * local[hit]
        normals[rays_hit] = np.stack([_dot(normal[hit], body_rotation[k]) for k in range(3)], -1)
    if not shade:
        return None, depth, instances

    rgb = _colors(scene, surface, coordinates, dome)
    shine = np.zeros(count)
    for index, body in enumerate(scene.bodies):
        shine[surface == index + 1] = body.shine
    solid = surface != SKY
    points = origin + depth[solid, None] * directions[solid]
    rgb[solid] = _shade(
        scene,
        time,
        rgb[solid],
        points,
        normals[solid],
        directions[solid],
        surface[solid],
        shine[solid],
    )
    return np.clip(rgb, 0.0, 1.0), depth, instances


def render_frame(
    scene: Scene, time: float, intrinsics: np.ndarray, height: int, width: int, shade=True
):
    """Render one frame, RAY_BLOCK rays at a time (each ray's result is the same either way).

    Args:
        shade: compute colours; without, only the geometry (depth and instances).

    Returns:
        rgb [H, W, 3] float in [0, 1] (None without `shade`), depth [H, W] float,
        instances [H, W] uint8, world_to_camera [4, 4].
    """
    world_to_camera = scene.camera.extrinsics(time)
    rotation, translation = world_to_camera[:3, :3], world_to_camera[:3, 3]
    origin = -_dot(rotation.T, translation)  # camera centre in world coordinates
    rays = _camera_rays(intrinsics, height, width)
    count = len(rays)
    rgb = np.empty((count, 3)) if shade else None
    depth = np.empty(count)
    instances = np.empty(count, np.uint8)
    for start in range(0, count, RAY_BLOCK):
        block = slice(start, start + RAY_BLOCK)
        directions = np.stack([_dot(rays[block], rotation[:, k]) for k in range(3)], axis=-1)
        block_rgb, depth[block], instances[block] = _cast(scene, time, origin, directions, shade)
        if shade:
            rgb[block] = block_rgb
    return (
        None if rgb is None else rgb.reshape(height, width, 3),
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
            scene, time, intrinsics, height, width, shade=False
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
        body_kind=np.array(
            [body.kind for body in scene.bodies] + [-1] * (MAX_BODIES - len(scene.bodies)),
            dtype=np.int16,
        ),
    )
