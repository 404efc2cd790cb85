"""The 4D world's geometry and ground truth, checked on scenes built by hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fourds.config.world_levels import MAX_BODIES, STANDARD, WORLD_LEVELS
from fourds.world import render_clip, sample_scene
from fourds.world.noise import Lattice
from fourds.world.render import _in_shadow, _intersect, render_frame
from fourds.world.scene import (
    CAMERA_MOTIONS,
    CLIP_SECONDS,
    SHAPES,
    Body,
    CameraPath,
    Light,
    Scene,
    Texture,
    _closest_approach,
)

GREY = Texture(colors=np.array([[0.3, 0.3, 0.3], [0.7, 0.7, 0.7]]), frequency=1.0, offset=0.5)
FLAT = Texture(colors=np.array([[0.5, 0.4, 0.3], [0.5, 0.4, 0.3]]), frequency=1.0, offset=0.5)


def body(shape: str, center, half_size, spin: float = 0.0) -> Body:
    return Body(
        shape=shape,
        half_size=np.asarray(half_size, float),
        start=np.asarray(center, float),
        velocity=np.zeros(3),
        bounce=0.0,
        axis=np.array([0.0, 1.0, 0.0]),
        spin=spin,
        texture=GREY,
        shine=0.0,
    )


def still_camera(distance: float = 6.0) -> CameraPath:
    """Looks along -z at the point (0, 1, 0) from (0, 1, distance)."""
    return CameraPath(
        motion="static", target=np.array([0.0, 1.0, 0.0]), radius=distance, height=0.0,
        angle0=np.pi / 2, angular_speed=0.0, dolly=0.0, pan=0.0, fov_degrees=60.0,
    )  # fmt: skip


def scene(bodies, points=((0.0, 0.0, 0.0),), owners=(0,), light=None) -> Scene:
    return Scene(
        bodies=tuple(bodies),
        camera=still_camera(),
        ground=GREY,
        sky=GREY,
        light=light or Light(direction=np.array([0.0, 1.0, 0.0]), intensity=0.6, ambient=0.3),
        lattice=Lattice.sample(np.random.default_rng(0)),
        track_points=np.asarray(points, float),
        track_body=np.asarray(owners),
    )


@pytest.mark.parametrize(
    ("shape", "half_size", "expected"),
    [
        ("sphere", (1.0, 1.0, 1.0), 4.0),
        ("box", (0.5, 0.7, 1.5), 3.5),
        ("cylinder", (0.8, 1, 0.8), 4.2),
    ],
)
def test_a_ray_along_z_hits_each_shape_at_its_front_surface(shape, half_size, expected):
    origin = np.array([0.0, 0.0, 5.0])
    directions = np.array([[0.0, 0.0, -1.0], [0.0, 5.0, -1.0]])  # at the body, and far above it
    t, normal = _intersect(body(shape, (0, 0, 0), half_size), origin, directions)
    assert t[0] == pytest.approx(expected) and np.isinf(t[1])
    np.testing.assert_allclose(normal[0], [0.0, 0.0, 1.0], atol=1e-12)


def test_cylinder_caps_are_hit_from_above():
    origin = np.array([0.2, 5.0, 0.1])
    t, normal = _intersect(
        body("cylinder", (0, 0, 0), (0.8, 1.0, 0.8)), origin, np.array([[0, -1.0, 0]])
    )
    assert t[0] == pytest.approx(4.0)
    np.testing.assert_allclose(normal[0], [0.0, 1.0, 0.0])


def test_track_visibility_follows_occlusion():
    """Near and far side of a sphere; a box in front hides a third point."""
    sphere = body("sphere", (0.0, 1.0, 0.0), (1.0, 1.0, 1.0))
    blocker = body("box", (0.6, 1.0, 3.0), (0.3, 0.3, 0.3))  # halfway to (1.2, 1, 0)
    points = [[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.2, 1.0, 0.0]]  # body, body, ground-owned
    clip = render_clip(scene([sphere, blocker], points, [1, 1, 0]), 1, 48, 48, 12, supersample=1)
    np.testing.assert_array_equal(clip.visible[:, 0], [True, False, False])
    np.testing.assert_allclose(clip.tracks[0, 0], [24.0, 24.0], atol=1e-9)  # image centre
    assert clip.instances[0, 24, 24] == 1 and clip.box_visible[:2, 0].all()


def test_boxes_enclose_exactly_the_visible_pixels_of_each_body():
    clip = render_clip(sample_scene(np.random.default_rng(3)), 4, 32, 32, 12, supersample=1)
    for index in range(MAX_BODIES):
        for frame in range(4):
            rows, cols = np.nonzero(clip.instances[frame] == index + 1)
            if clip.box_visible[index, frame]:
                expected = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
                np.testing.assert_array_equal(clip.boxes[index, frame], expected)
            else:
                assert len(rows) == 0 and np.isnan(clip.boxes[index, frame]).all()


def test_camera_motion_types_move_the_camera_as_named():
    scenes = [sample_scene(np.random.default_rng(seed)) for seed in range(40)]
    assert {s.camera.motion for s in scenes} == set(CAMERA_MOTIONS)
    assert {b.shape for s in scenes for b in s.bodies} == set(SHAPES)
    for item in scenes:
        camera = item.camera
        start, end = camera.extrinsics(0.0), camera.extrinsics(2.0)
        eye = [-(m[:3, :3].T @ m[:3, 3]) for m in (start, end)]
        moved, turned = not np.allclose(eye[0], eye[1]), not np.allclose(start[:3, :3], end[:3, :3])
        distance = [np.linalg.norm(e - camera.target) for e in eye]
        expected = {
            "static": (False, False),
            "pan": (False, True),
            "dolly": (True, False),
            "orbit": (True, True),
        }[camera.motion]
        assert (moved, turned) == expected, camera.motion
        if camera.motion == "orbit":
            assert distance[0] == pytest.approx(distance[1])
        assert item.label == camera.motion and isinstance(item.label, str)


def test_spinning_bodies_carry_their_tracked_points():
    spinning = body("box", (0.0, 1.0, 0.0), (0.5, 0.5, 0.5), spin=3.0)
    on_axis = render_clip(scene([spinning], [[0.0, 0.5, 0.0]], [1]), 12, 32, 32, 12, 1).tracks[0]
    np.testing.assert_allclose(on_axis, np.repeat(on_axis[:1], 12, axis=0), atol=1e-9)
    off_axis = render_clip(scene([spinning], [[0.5, 0.0, 0.0]], [1]), 12, 32, 32, 12, 1).tracks[0]
    assert np.abs(off_axis[:, 0] - off_axis[0, 0]).max() > 2.0  # swings across the image


def test_scenes_have_clear_bodies_and_take_the_motion_asked_for():
    for seed in range(30):
        motion = CAMERA_MOTIONS[seed % len(CAMERA_MOTIONS)]
        item = sample_scene(np.random.default_rng(seed), motion)
        assert item.label == motion
        fewest, most = WORLD_LEVELS[STANDARD].bodies
        assert fewest <= len(item.bodies) <= most
        for i, first in enumerate(item.bodies):
            for second in item.bodies[i + 1 :]:
                gap = _closest_approach(
                    first.start - second.start, first.velocity - second.velocity, CLIP_SECONDS
                )
                assert gap >= first.reach + second.reach
    with pytest.raises(ValueError, match="camera motion"):
        sample_scene(np.random.default_rng(0), "zoom")


def test_bodies_cast_shadows_and_never_shadow_themselves():
    """The sun straight above: the ground under a sphere is in its shadow, the ground beside
    it and the sphere's own top are not."""
    sphere = body("sphere", (0.0, 1.0, 0.0), (0.5, 0.5, 0.5))
    world = scene([sphere])
    points = np.array([[0.2, 0.0, 0.1], [2.0, 0.0, 0.0], [0.0, 1.5, 0.0]])
    shadowed = _in_shadow(world, 0.0, points, np.array([0, 0, 1]))
    np.testing.assert_array_equal(shadowed, [True, False, False])


def test_ground_is_lambertian_with_ambient_light():
    """A flat-coloured ground lit from 30 degrees elevation: albedo * (ambient + I sin 30)."""
    elevation = np.radians(30.0)
    light = Light(np.array([np.cos(elevation), np.sin(elevation), 0.0]), 0.6, 0.3)
    world = dataclasses.replace(scene([], light=light), ground=FLAT)
    rgb, _, _, _ = render_frame(world, 0.0, world.camera.intrinsics(16, 16), 16, 16)
    expected = FLAT.colors[0] * (0.3 + 0.6 * np.sin(elevation))
    np.testing.assert_allclose(rgb[-1, 8], expected, atol=1e-12)  # the bottom row sees ground


def test_shading_follows_the_surface_normal():
    """A sphere lit from the camera's left is brighter on its left half."""
    sphere = dataclasses.replace(body("sphere", (0.0, 1.0, 0.0), (1.0, 1.0, 1.0)), texture=FLAT)
    light = Light(np.array([-1.0, 0.0, 0.0]), 0.8, 0.1)
    rgb, _, instances, _ = render_frame(
        scene([sphere], light=light), 0.0, still_camera().intrinsics(32, 32), 32, 32
    )
    on_sphere = instances == 1
    left = rgb[:, :14][on_sphere[:, :14]].mean()
    right = rgb[:, 18:][on_sphere[:, 18:]].mean()
    assert left > right + 0.15


def test_frames_do_not_depend_on_how_rays_are_blocked(monkeypatch):
    world = sample_scene(np.random.default_rng(4), "orbit")
    intrinsics = world.camera.intrinsics(24, 24)
    whole = render_frame(world, 0.5, intrinsics, 24, 24)
    monkeypatch.setattr("fourds.world.render.RAY_BLOCK", 37)
    blocked = render_frame(world, 0.5, intrinsics, 24, 24)
    for first, second in zip(whole, blocked, strict=True):
        np.testing.assert_array_equal(first, second)
