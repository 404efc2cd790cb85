"""Ray casting of a `SceneBatch` on its device: frames and ground truth of many clips at once.

The image model is fourds.world.render's (one ray per pixel centre with unit camera-z, so a
hit's ray parameter is its z-depth; a sky dome, the ground plane and the bodies; textures of
fractal value noise; a sun with Lambertian shading, cast shadows and a Blinn-Phong highlight;
ambient light; 2x2 supersampled colour, ground truth from the centre rays), written over
tensors [C, T, P] (clips, frames, pixels) in float32, a pass of clips at a time. It renders
the same scene as the numpy renderer to within float32 rounding: a pixel changes where a ray
grazes an edge, a shadow's rim or a rounding boundary of the uint8 colour (the measured
tolerance is in tests/world/test_batch_render.py). It is not bit for bit the same on a CPU and a
GPU; it is fast on a GPU, which is what the pretraining world source needs
(fourds.train.world_clips).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch

from fourds.config.world_levels import MAX_BODIES
from fourds.world.batch import SceneBatch, body_poses, camera_poses, dot, focal_lengths, unit
from fourds.world.noise import LATTICE_SIZE, OCTAVES
from fourds.world.render import HIGHLIGHT_SQUARINGS, Rendering
from fourds.world.scene import DOME_RADIUS

SKY, GROUND = -1, 0  # surface ids besides 1 + body slot (fourds.world.render's)
# Rays traced together, by device: a pass's temporaries are ~500 B a ray (1.1 GB at 2**21 on a
# CPU). On a GPU a pass's ~7,800 kernel launches, not its rays, bound a small pass (the H100's
# eager render, docs/research/gpu-study.md section 7): four times the rays there.
RAYS_PER_PASS = {"cpu": 2**21, "cuda": 2**23}
COMPILED_RAYS_PER_PASS = 2**24  # compiled, a pass keeps few temporaries: larger passes


def _transposed(rotation: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """rotation^T @ vectors: [..., 3, 3] and [..., 3] (broadcast) -> [..., 3]."""
    return torch.stack([dot(vectors, rotation[..., :, k]) for k in range(3)], dim=-1)


def _rotated(rotation: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """rotation @ vectors: [..., 3, 3] and [..., 3] (broadcast) -> [..., 3]."""
    return torch.stack([dot(vectors, rotation[..., k, :]) for k in range(3)], dim=-1)


def _value_noise(lattice: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Value noise (fourds.world.noise.value_noise) of lattice [C, L^3] at points [C, R, 3]."""
    floors = torch.floor(points)
    fraction = points - floors
    weight = fraction * fraction * (3.0 - 2.0 * fraction)
    cells = floors.to(torch.int64)
    mask, size = LATTICE_SIZE - 1, LATTICE_SIZE
    x = [((cells[..., 0] + d) & mask) * (size * size) for d in (0, 1)]
    y = [((cells[..., 1] + d) & mask) * size for d in (0, 1)]
    z = [(cells[..., 2] + d) & mask for d in (0, 1)]
    index = torch.stack([x[i] + y[j] + z[k] for k in (0, 1) for j in (0, 1) for i in (0, 1)])
    count = points.shape[1]
    corners = torch.gather(lattice, 1, index.permute(1, 0, 2).reshape(len(lattice), -1))
    corners = corners.view(len(lattice), 8, count).permute(1, 0, 2)  # [8, C, R]
    lines = corners[0::2] + weight[..., 0] * (corners[1::2] - corners[0::2])
    planes = lines[0::2] + weight[..., 1] * (lines[1::2] - lines[0::2])
    return planes[0] + weight[..., 2] * (planes[1] - planes[0])


def _fractal_noise(lattice: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """fourds.world.noise.fractal_noise of lattice [C, L^3] at points [C, R, 3] -> [C, R]."""
    total, amplitude, norm = torch.zeros_like(points[..., 0]), 1.0, 0.0
    for octave in range(OCTAVES):
        total = total + amplitude * _value_noise(lattice, points + 7.31 * octave)
        norm += amplitude
        amplitude *= 0.5
        points = points * 2.0
    return torch.clamp(0.5 + 2.0 * (total / norm - 0.5), 0.0, 1.0)


def _hits(shape, size, origin, directions, normals: bool = True):
    """Nearest positive hits of rays with one body slot per clip, in body coordinates.

    Args:
        shape: [C, 1, 1] int64 (index into SHAPES, -1: empty slot); size: [C, 1, 1, 3] half
            sizes; origin, directions: [C, T, P, 3] or broadcastable to it.

    Returns t [C, T, P] (inf where missed) and unit normals [C, T, P, 3] in body coordinates
    (None when not `normals`), for the slot's shape (fourds.world.render._intersect).
    """
    inf = torch.tensor(float("inf"), device=directions.device)
    origin, directions = torch.broadcast_tensors(origin, directions)
    # sphere
    a = dot(directions, directions)
    b = 2.0 * dot(directions, origin)
    disc = b * b - 4.0 * a * (dot(origin, origin) - size[..., 0] ** 2)
    sphere = torch.where(disc > 0, (-b - torch.sqrt(disc.clamp(min=0.0))) / (2.0 * a), inf)
    sphere = torch.where(sphere > 0, sphere, inf)
    # box: the slabs
    first = (-size - origin) / directions
    second = (size - origin) / directions
    near = torch.minimum(first, second).amax(-1)
    far = torch.maximum(first, second).amin(-1)
    box = torch.where((near <= far) & (near > 0), near, inf)
    # cylinder about y: the side, then the caps
    radius, half_height = size[..., 0], size[..., 1]
    dx, dy, dz = directions.unbind(-1)
    ox, oy, oz = origin.unbind(-1)
    a = dx * dx + dz * dz
    b = 2.0 * (dx * ox + dz * oz)
    disc = b * b - 4.0 * a * (ox * ox + oz * oz - radius * radius)
    side = torch.where(disc > 0, (-b - torch.sqrt(disc.clamp(min=0.0))) / (2.0 * a), inf)
    side = torch.where((side > 0) & (torch.abs(oy + side * dy) <= half_height), side, inf)
    cylinder, on_side = side, torch.isfinite(side)
    for cap in (-half_height, half_height):
        t_cap = (cap - oy) / dy
        x, z = ox + t_cap * dx, oz + t_cap * dz
        hit = (t_cap > 0) & (x * x + z * z <= radius * radius) & (t_cap < cylinder)
        cylinder = torch.where(hit, t_cap, cylinder)
        on_side = on_side & ~hit
    kind = shape
    t = torch.where(kind == 0, sphere, torch.where(kind == 1, box, cylinder))
    t = torch.where(kind < 0, inf, t)
    if not normals:
        return t, None
    point = origin + torch.where(torch.isfinite(t), t, 0.0).unsqueeze(-1) * directions
    sphere_normal = point / size[..., :1]
    face = torch.argmax(torch.abs(point) / size, dim=-1)
    box_normal = torch.nn.functional.one_hot(face, 3) * torch.sign(point)
    cylinder_normal = torch.stack(
        [
            torch.where(on_side, point[..., 0] / radius, 0.0),
            torch.where(on_side, 0.0, torch.sign(point[..., 1])),
            torch.where(on_side, point[..., 2] / radius, 0.0),
        ],
        dim=-1,
    )
    kind = kind.unsqueeze(-1)
    normal = torch.where(
        kind == 0, sphere_normal, torch.where(kind == 1, box_normal, cylinder_normal)
    )
    return t, normal


@dataclasses.dataclass(frozen=True)
class _Poses:
    """Where everything is at each frame of a pass: body centres [C, M, T, 3] and rotations
    [C, M, T, 3, 3], camera rotations [C, T, 3, 3] (world to camera) and centres [C, T, 3]."""

    centers: torch.Tensor
    rotations: torch.Tensor
    camera: torch.Tensor
    eye: torch.Tensor


def _cast(scenes: SceneBatch, poses: _Poses, directions: torch.Tensor, shade: bool):
    """Trace camera rays along world directions [C, T, P, 3].

    Returns rgb [C, T, P, 3] in [0, 1] (None without `shade`), depth [C, T, P] and surface
    [C, T, P] int64 (SKY, GROUND or 1 + body slot).
    """
    origin = poses.eye[:, :, None, :]  # [C, T, 1, 3]
    a = dot(directions, directions)
    b = 2.0 * dot(directions, origin)
    c = dot(origin, origin) - DOME_RADIUS**2
    depth = (-b + torch.sqrt(b * b - 4.0 * a * c)) / (2.0 * a)
    dome = (origin + depth.unsqueeze(-1) * directions) / DOME_RADIUS
    surface = torch.full_like(depth, SKY, dtype=torch.int64)
    t_ground = -origin[..., 1] / directions[..., 1]
    ground = (t_ground > 0) & (t_ground < depth)
    depth = torch.where(ground, t_ground, depth)
    surface = torch.where(ground, GROUND, surface)
    coordinates = origin + depth.unsqueeze(-1) * directions  # world, on the ground
    normals = torch.zeros_like(directions)
    normals[..., 1] = ground.to(directions.dtype)
    for slot in range(MAX_BODIES):
        rotation = poses.rotations[:, slot, :, None]  # [C, T, 1, 3, 3]
        local_origin = _transposed(rotation, origin - poses.centers[:, slot, :, None])
        local = _transposed(rotation, directions)
        shape = scenes.shape[:, slot, None, None]
        size = scenes.half_size[:, slot, None, None, :]
        t, normal = _hits(shape, size, local_origin, local, normals=shade)
        hit = t < depth
        depth = torch.where(hit, t, depth)
        surface = torch.where(hit, slot + 1, surface)
        if shade:
            hit3 = hit.unsqueeze(-1)
            coordinates = torch.where(hit3, local_origin + t.unsqueeze(-1) * local, coordinates)
            normals = torch.where(hit3, _rotated(rotation, normal), normals)
    if not shade:
        return None, depth, surface
    albedo = _colors(scenes, surface, coordinates, dome)
    points = origin + depth.unsqueeze(-1) * directions
    rgb = _shade(scenes, poses, albedo, points, normals, directions, surface)
    return torch.clamp(rgb, 0.0, 1.0), depth, surface


def _surface_table(scenes: SceneBatch, surface: torch.Tensor, sky, ground, bodies) -> torch.Tensor:
    """Per-ray values of a per-surface property: sky [C, ...], ground [C, ...] and bodies
    [C, M, ...] looked up by surface [C, T, P] -> [C, T, P, ...]."""
    table = torch.cat([sky[:, None], ground[:, None], bodies], dim=1)  # [C, M + 2, ...]
    index = (surface + 1).reshape(len(surface), -1)  # SKY -> 0, GROUND -> 1, slot s -> s + 2
    extra = table.shape[2:]
    index = index.view(*index.shape, *([1] * len(extra))).expand(*index.shape, *extra)
    return torch.gather(table, 1, index).view(*surface.shape, *extra)


def _colors(scenes: SceneBatch, surface, coordinates, dome) -> torch.Tensor:
    """Unlit colours [C, T, P, 3]: each surface's texture, the sky a ramp with clouds."""
    sky = surface == SKY
    frequency = _surface_table(
        scenes, surface, scenes.sky_frequency, scenes.ground_frequency, scenes.body_frequency
    )
    offset = _surface_table(
        scenes, surface, scenes.sky_offset, scenes.ground_offset, scenes.body_offset
    )
    colors = _surface_table(
        scenes, surface, scenes.sky_colors, scenes.ground_colors, scenes.body_colors
    )
    at = torch.where(sky.unsqueeze(-1), dome, coordinates)
    lattice_points = at * frequency.unsqueeze(-1) + offset
    value = _fractal_noise(scenes.lattice, lattice_points.reshape(len(at), -1, 3))
    value = value.view(surface.shape)
    elevation = torch.sqrt(torch.clamp(dome[..., 1], 0.0, 1.0))
    clouds = torch.clamp(0.85 * elevation + 0.6 * (value - 0.5), 0.0, 1.0)
    value = torch.where(sky, clouds, value).unsqueeze(-1)
    return colors[..., 0, :] + value * (colors[..., 1, :] - colors[..., 0, :])


def _shade(scenes: SceneBatch, poses: _Poses, albedo, points, normals, rays, surface):
    """Lit colours [C, T, P, 3] of the solid surfaces (the sky keeps its colour)."""
    light = scenes.light_direction[:, None, None, :]  # [C, 1, 1, 3]
    solid = surface != SKY
    facing = torch.clamp(dot(normals, light), 0.0, 1.0)
    shadowed = torch.zeros_like(solid)
    for slot in range(MAX_BODIES):
        rotation = poses.rotations[:, slot, :, None]
        local_origin = _transposed(rotation, points - poses.centers[:, slot, :, None])
        local_light = _transposed(rotation, light)
        shape = scenes.shape[:, slot, None, None]
        size = scenes.half_size[:, slot, None, None, :]
        t, _ = _hits(shape, size, local_origin, local_light, normals=False)
        shadowed = shadowed | (torch.isfinite(t) & (surface != slot + 1))
    lit = solid & (facing > 0) & ~shadowed
    sun = scenes.light_intensity[:, None, None] * lit
    ambient = scenes.ambient[:, None, None]
    color = albedo * (ambient + sun * facing).unsqueeze(-1)
    shine = _surface_table(
        scenes,
        surface,
        torch.zeros_like(scenes.ambient),
        torch.zeros_like(scenes.ambient),
        scenes.shine,
    )
    halfway = unit(unit(-rays) + light)
    highlight = torch.clamp(dot(normals, halfway), 0.0, 1.0)
    for _ in range(HIGHLIGHT_SQUARINGS):
        highlight = highlight * highlight
    color = color + (shine * sun * highlight).unsqueeze(-1)
    return torch.where(solid.unsqueeze(-1), color, albedo)


def _camera_rays(focal: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Ray directions [C, 1, H*W, 3] in camera coordinates with z = 1 (pixel centres)."""
    device = focal.device
    v, u = torch.meshgrid(
        torch.arange(height, device=device) + 0.5,
        torch.arange(width, device=device) + 0.5,
        indexing="ij",
    )
    f = focal[:, None, None]
    x = (u.reshape(-1) - width / 2.0) / f  # [C, 1, P]
    y = (v.reshape(-1) - height / 2.0) / f
    return torch.stack([x, y, torch.ones_like(x)], dim=-1)


def _trace_frames(scenes: SceneBatch, poses: _Poses, size: int, shade: bool):
    """rgb [C, T, S, S, 3] (or None), depth [C, T, S, S], surface [C, T, S, S] of every frame."""
    rays = _camera_rays(focal_lengths(scenes, size), size, size)
    directions = _transposed(poses.camera[:, :, None], rays)  # [C, T, P, 3] world
    rgb, depth, surface = _cast(scenes, poses, directions, shade)
    frames = (len(scenes), poses.eye.shape[1], size, size)
    return (
        None if rgb is None else rgb.view(*frames, 3),
        depth.view(frames),
        surface.view(frames),
    )


@dataclasses.dataclass(frozen=True)
class BatchRendering:
    """Rendered clips on the device (fourds.world.render.Rendering's fields with a leading
    clip axis B; M = MAX_BODIES, N tracked points).

    video: uint8 [B, T, S, S, 3]. The ground truth, None when not asked for: depth float32
    [B, T, S, S], instances uint8 [B, T, S, S], intrinsics [B, T, 3, 3], extrinsics
    [B, T, 4, 4], tracks float32 [B, N, T, 2], visible bool [B, N, T], track_instance uint8
    [B, N], boxes float32 [B, M, T, 4] (NaN where not visible), box_visible bool [B, M, T],
    body_kind int16 [B, M]; labels: the B class names.
    """

    video: torch.Tensor
    depth: torch.Tensor | None = None
    instances: torch.Tensor | None = None
    intrinsics: torch.Tensor | None = None
    extrinsics: torch.Tensor | None = None
    tracks: torch.Tensor | None = None
    visible: torch.Tensor | None = None
    track_instance: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    box_visible: torch.Tensor | None = None
    body_kind: torch.Tensor | None = None
    labels: tuple[str, ...] = ()

    def clip(self, index: int) -> Rendering:
        """Clip `index` as a fourds.world.render.Rendering of numpy arrays (the corpus's)."""

        def host(value: torch.Tensor, dtype=None) -> np.ndarray:
            array = value[index].cpu().numpy()
            return array if dtype is None else array.astype(dtype)

        return Rendering(
            video=host(self.video),
            depth=host(self.depth),
            instances=host(self.instances),
            intrinsics=host(self.intrinsics, np.float64),
            extrinsics=host(self.extrinsics, np.float64),
            tracks=host(self.tracks),
            visible=host(self.visible),
            track_instance=host(self.track_instance),
            boxes=host(self.boxes),
            box_visible=host(self.box_visible),
            label=self.labels[index],
            body_kind=host(self.body_kind),
        )


def _ground_truth(scenes: SceneBatch, poses: _Poses, depth, surface, size: int) -> dict:
    """Cameras, tracks and boxes of a pass, from the centre rays' depth and surface."""
    clips, frames = depth.shape[:2]
    focal = focal_lengths(scenes, size)
    intrinsics = torch.zeros(clips, frames, 3, 3, device=depth.device)
    intrinsics[..., 0, 0] = intrinsics[..., 1, 1] = focal[:, None]
    intrinsics[..., 0, 2] = intrinsics[..., 1, 2] = size / 2.0
    intrinsics[..., 2, 2] = 1.0
    extrinsics = torch.zeros(clips, frames, 4, 4, device=depth.device)
    extrinsics[..., :3, :3] = poses.camera
    extrinsics[..., :3, 3] = -_rotated(poses.camera, poses.eye)
    extrinsics[..., 3, 3] = 1.0
    instances = torch.where(surface > 0, surface, 0)

    # tracks: the points at each frame, projected; visible where their own surface is seen
    owner = scenes.track_body  # [C, N]
    slot = (owner - 1).clamp(min=0)
    gather = slot[:, :, None, None].expand(-1, -1, frames, 3)
    center = torch.gather(poses.centers, 1, gather)  # [C, N, T, 3]
    rotation = torch.gather(
        poses.rotations, 1, gather[..., None].expand(-1, -1, -1, 3, 3)
    )  # [C, N, T, 3, 3]
    local = scenes.track_points[:, :, None, :]
    on_body = center + _rotated(rotation, local)
    points = torch.where((owner > 0)[..., None, None], on_body, local.expand_as(on_body))
    camera = _rotated(poses.camera[:, None], points - poses.eye[:, None])  # [C, N, T, 3]
    z = camera[..., 2]
    f = focal[:, None, None]
    x = f * camera[..., 0] / z + size / 2.0
    y = f * camera[..., 1] / z + size / 2.0
    inside = (z > 0) & (x >= 0) & (x < size) & (y >= 0) & (y < size)
    rows = torch.floor(torch.where(inside, y, 0.0)).long().clamp(0, size - 1)
    cols = torch.floor(torch.where(inside, x, 0.0)).long().clamp(0, size - 1)
    pixel = (rows * size + cols).permute(0, 2, 1)  # [C, T, N]
    seen_depth = torch.gather(depth.flatten(2), 2, pixel).permute(0, 2, 1)
    seen = torch.gather(instances.flatten(2), 2, pixel).permute(0, 2, 1)
    unobstructed = seen_depth >= z - torch.clamp(0.03 * z, min=0.05)
    visible = inside & (seen == owner[..., None]) & unobstructed

    # boxes: the pixel edges of each body's visible pixels
    coordinate = torch.arange(size, device=depth.device, dtype=torch.float32)
    boxes, box_visible = [], []
    for body in range(MAX_BODIES):
        mine = instances == body + 1  # [C, T, S, S]
        in_row, in_col = mine.any(-1), mine.any(-2)  # [C, T, S]
        big = torch.tensor(float(size), device=depth.device)
        x0 = torch.where(in_col, coordinate, big).amin(-1)
        x1 = torch.where(in_col, coordinate + 1, -big).amax(-1)
        y0 = torch.where(in_row, coordinate, big).amin(-1)
        y1 = torch.where(in_row, coordinate + 1, -big).amax(-1)
        present = in_row.any(-1)
        box = torch.stack([x0, y0, x1, y1], dim=-1)
        boxes.append(torch.where(present[..., None], box, float("nan")))
        box_visible.append(present)
    return {
        "depth": depth,
        "instances": instances.to(torch.uint8),
        "intrinsics": intrinsics,
        "extrinsics": extrinsics,
        "tracks": torch.stack([x, y], dim=-1),
        "visible": visible,
        "track_instance": owner.to(torch.uint8),
        "boxes": torch.stack(boxes, dim=1),
        "box_visible": torch.stack(box_visible, dim=1),
    }


def _render_pass(scenes: SceneBatch, times, size: int, supersample: int, truth: bool) -> dict:
    centers, rotations = body_poses(scenes, times)
    camera, eye = camera_poses(scenes, times)
    poses = _Poses(centers, rotations, camera, eye)
    fine = size * supersample
    rgb, _, _ = _trace_frames(scenes, poses, fine, shade=True)
    clips, frames = rgb.shape[:2]
    blocks = rgb.view(clips, frames, size, supersample, size, supersample, 3)
    rgb = blocks.mean(dim=(3, 5))
    out = {"video": torch.round(rgb * 255.0).to(torch.uint8)}
    if truth:
        _, depth, surface = _trace_frames(scenes, poses, size, shade=False)
        out.update(_ground_truth(scenes, poses, depth, surface, size))
    return out


@functools.cache
def _compiled_pass():
    """`_render_pass` compiled whole (Inductor fuses its elementwise chains: on a CPU 15x
    faster than eager once compiled, which takes a minute or two; on a GPU the world's rate)."""
    return torch.compile(_render_pass, dynamic=False, fullgraph=True)


def render_batch(
    scenes: SceneBatch,
    times: torch.Tensor,
    size: int,
    supersample: int = 2,
    truth: bool = True,
    compiled: bool = False,
) -> BatchRendering:
    """Render B clips of `scenes` at times [B, T] (seconds), size x size, on the scenes' device.

    Colours average supersample x supersample rays per pixel; the ground truth (when `truth`)
    comes from the ray through each pixel centre. Clips are traced a pass at a time, at most
    RAYS_PER_PASS[device type] rays per pass (COMPILED_RAYS_PER_PASS `compiled`: the pass
    compiled by torch.compile, the same frames to float32 rounding).
    """
    frames = times.shape[1]
    per_clip = frames * (size * supersample) ** 2
    eager = RAYS_PER_PASS.get(times.device.type, RAYS_PER_PASS["cpu"])
    step = max(1, (COMPILED_RAYS_PER_PASS if compiled else eager) // per_clip)
    render_pass = _compiled_pass() if compiled else _render_pass
    passes = [
        render_pass(
            scenes[start : start + step], times[start : start + step], size, supersample, truth
        )
        for start in range(0, len(scenes), step)
    ]
    joined = {key: torch.cat([part[key] for part in passes]) for key in passes[0]}
    kinds = scenes.kind.to(torch.int16) if truth else None
    return BatchRendering(**joined, body_kind=kinds, labels=tuple(scenes.labels()))
