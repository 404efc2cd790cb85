"""`fourds synth` is deterministic: the pinned seed reproduces frames and ground truth."""

import dataclasses
import json

import numpy as np
import pytest

from fourds.config import CurateConfig
from fourds.config.world_levels import MAX_BODIES
from fourds.data.corpus import SPLITS, write_corpus
from fourds.data.curate import curate
from fourds.data.shards import load_split
from fourds.data.video import read_video, write_video
from fourds.world import render_clip, sample_scene
from fourds.world.scene import CAMERA_MOTIONS, DOME_RADIUS
from tests.conftest import TINY_WORLD


def load_truth(path):
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def test_rendering_again_reproduces_frames_and_ground_truth(tiny_corpus, tmp_path):
    write_corpus(tmp_path, TINY_WORLD)
    videos = sorted(p.relative_to(tiny_corpus) for p in tiny_corpus.rglob("*.mp4"))
    assert len(videos) == sum(TINY_WORLD.videos.values())
    for relative in videos:
        np.testing.assert_array_equal(
            read_video(tiny_corpus / relative), read_video(tmp_path / relative)
        )
        first = load_truth((tiny_corpus / relative).with_suffix(".npz"))
        second = load_truth((tmp_path / relative).with_suffix(".npz"))
        for key in first:
            np.testing.assert_array_equal(first[key], second[key])


def test_videos_decode_to_exactly_the_rendered_frames(tmp_path):
    scene = sample_scene(np.random.default_rng(5))
    rendering = render_clip(scene, 6, 32, 32, 12)
    write_video(tmp_path / "clip.mp4", rendering.video, 12)
    np.testing.assert_array_equal(read_video(tmp_path / "clip.mp4"), rendering.video)


def test_corpus_layout_and_ground_truth_shapes(tiny_corpus):
    for split in SPLITS:
        for video_path in (tiny_corpus / split).glob("*.mp4"):
            video = read_video(video_path)
            truth = load_truth(video_path.with_suffix(".npz"))
            frames, size = TINY_WORLD.frames, TINY_WORLD.size
            assert video.shape == (frames, size, size, 3)
            assert truth["depth"].shape == (frames, size, size)
            assert truth["intrinsics"].shape == (frames, 3, 3)
            assert truth["extrinsics"].shape == (frames, 4, 4)
            assert truth["instances"].shape == (frames, size, size)
            tracks = len(truth["track_instance"])
            assert truth["tracks"].shape == (tracks, frames, 2)
            assert truth["visible"].shape == (tracks, frames)
            assert truth["boxes"].shape == (MAX_BODIES, frames, 4)
            assert truth["box_visible"].shape == (MAX_BODIES, frames)
            assert truth["label"].shape == () and truth["label"].dtype.kind == "U"
            assert str(truth["label"]) in CAMERA_MOTIONS
            assert (truth["depth"] > 0).all()
    assert (tiny_corpus / "world.json").is_file()


def test_classes_are_balanced_and_named(tiny_corpus):
    labels = [
        str(load_truth(tiny_corpus / "pretrain" / f"{index:05d}.npz")["label"])
        for index in range(TINY_WORLD.videos["pretrain"])
    ]
    assert labels == list(CAMERA_MOTIONS[: len(labels)])


def test_splits_are_different_scenes(tiny_corpus):
    first = read_video(tiny_corpus / "pretrain" / "00000.mp4")
    other = read_video(tiny_corpus / "readout-test" / "00000.mp4")
    assert np.abs(first.astype(int) - other.astype(int)).mean() > 5


def test_depth_back_projects_onto_the_scene_geometry():
    """Without objects, every pixel's depth lands on the ground plane (y = 0) or the sky dome."""
    scene = dataclasses.replace(sample_scene(np.random.default_rng(1)), bodies=())
    rendering = render_clip(scene, 2, 32, 32, 12, supersample=1)
    k, world_to_camera = rendering.intrinsics[1], rendering.extrinsics[1]
    rows, cols = np.meshgrid(np.arange(32) + 0.5, np.arange(32) + 0.5, indexing="ij")
    pixels = np.stack([cols, rows, np.ones_like(rows)], -1).reshape(-1, 3)
    camera_points = (pixels @ np.linalg.inv(k).T) * rendering.depth[1].reshape(-1, 1)
    rotation, translation = world_to_camera[:3, :3], world_to_camera[:3, 3]
    world_points = (camera_points - translation) @ rotation
    on_ground = np.abs(world_points[:, 1]) < 1e-3
    on_dome = np.abs(np.linalg.norm(world_points, axis=1) - DOME_RADIUS) < 1e-2
    assert on_ground.any() and on_dome.any()
    assert (on_ground | on_dome).all()
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)


def test_the_batched_renderer_writes_the_same_layout(tmp_path):
    spec = dataclasses.replace(TINY_WORLD, renderer="batched")
    videos = write_corpus(tmp_path, spec)
    assert len(videos) == sum(spec.videos.values())
    for path in videos:
        video, truth = read_video(path), load_truth(path.with_suffix(".npz"))
        assert video.shape == (spec.frames, spec.size, spec.size, 3)
        assert truth["boxes"].shape == (MAX_BODIES, spec.frames, 4)
    for path in videos:  # balanced: video i of a split moves as motion i % 4
        label = str(load_truth(path.with_suffix(".npz"))["label"])
        assert label == CAMERA_MOTIONS[int(path.stem) % len(CAMERA_MOTIONS)]
    again = tmp_path / "again"
    write_corpus(again, spec)
    assert (
        read_video(again / videos[0].relative_to(tmp_path)).tobytes()
        == read_video(videos[0]).tobytes()
    )


def test_a_corpus_of_another_complexity_draws_its_scenes_from_that_level(tmp_path):
    spec = dataclasses.replace(TINY_WORLD, videos={"pretrain": 6}, complexity="simple")
    write_corpus(tmp_path, spec)
    assert json.loads((tmp_path / "world.json").read_text())["complexity"] == "simple"
    for truth_path in sorted((tmp_path / "pretrain").glob("*.npz")):
        with np.load(truth_path) as truth:
            assert truth["track_instance"].max() <= 2  # 1-2 bodies: tracks' owners 1 and 2


@pytest.mark.parametrize("renderer", ["numpy", "batched"])
def test_a_catalog_corpus_carries_each_bodys_kind_to_the_curated_clips(tmp_path, renderer):
    spec = dataclasses.replace(
        TINY_WORLD,
        videos={"pretrain": 2, "readout-train": 2, "readout-test": 2},
        complexity="catalog-1k",
        renderer=renderer,
    )
    write_corpus(tmp_path / "corpus", spec)
    for truth_path in sorted((tmp_path / "corpus" / "readout-test").glob("*.npz")):
        with np.load(truth_path) as truth:
            kinds, boxes = truth["body_kind"], truth["boxes"]
            assert kinds.shape == (MAX_BODIES,) and kinds.dtype == np.int16
            present = ~np.isnan(boxes).all(axis=(1, 2))  # a body seen in some frame
            assert (kinds[present] >= 0).all() and (kinds < 1024).all()
    curate(tmp_path / "corpus", tmp_path / "curated", CurateConfig(4, 2, 12, 16, 8, 0.0, "center"))
    clips = load_split(tmp_path / "curated" / "shards", "readout-test", ("body_kind",))
    assert clips["body_kind"].shape[1:] == (MAX_BODIES,)
    assert clips["body_kind"].max() >= 0


def test_a_continuous_corpus_has_no_kinds(tiny_corpus):
    for truth_path in sorted((tiny_corpus / "pretrain").glob("*.npz")):
        with np.load(truth_path) as truth:
            assert "body_kind" not in truth.files
