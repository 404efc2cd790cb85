"""Benchmark files as readout splits: the world's readout-test videos, written in each public
format, read back through `load_readout_split` match the curated synthetic clips they came
from."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from fourds.config import CurateConfig, SourceConfig
from fourds.data.benchmarks import clips_from_samples, load_readout_split, source_files
from fourds.data.curate import curate
from fourds.data.sample import Sample
from fourds.data.shards import load_split
from fourds.data.spill import HostBudget
from tests.benchmark_files import export_benchmark, jpeg, write_ssv2

FRAMES, SIZE = 4, 16


@pytest.fixture(scope="module")
def shards(tiny_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("curated")
    curate(tiny_corpus, root, CurateConfig(FRAMES, 1, 12, SIZE, 8, 0.0, "center"))
    return root / "shards"


def both(shards, corpus, tmp_path, format: str, keys: tuple[str, ...]):
    """(curated synthetic readout-test clips, the same videos read as `format`)."""
    path = export_benchmark(corpus, "readout-test", format, tmp_path)
    source = SourceConfig(format, str(path), str(path), 1)
    keys = ("video", *keys)
    truth = load_split(shards, "readout-test", keys)
    clips = load_readout_split(source, "test", shards, keys, FRAMES, SIZE)
    assert clips["video"].shape == truth["video"].shape == (3, FRAMES, SIZE, SIZE, 3)
    return truth, clips


def test_tapvid_pickle_gives_the_visible_tracks_of_each_clip(shards, tiny_corpus, tmp_path):
    truth, clips = both(shards, tiny_corpus, tmp_path, "tapvid", ("tracks", "visible"))
    for clip in range(3):
        seen = truth["visible"][clip].any(axis=1)  # points never visible in a clip are dropped
        count = int(seen.sum())
        np.testing.assert_allclose(clips["tracks"][clip, :count], truth["tracks"][clip, seen])
        np.testing.assert_array_equal(clips["visible"][clip, :count], truth["visible"][clip, seen])
        assert not clips["visible"][clip, count:].any()  # padding is never visible
    # the same frames, resized bilinearly (TAP-Vid) instead of by area (curation)
    difference = np.abs(clips["video"].astype(int) - truth["video"]).mean()
    other_clip = np.abs(clips["video"].astype(int) - np.roll(truth["video"], 1, axis=0)).mean()
    assert difference < 8 and difference < other_clip / 2, (difference, other_clip)


def test_scannet_scenes_give_depth_and_cameras(shards, tiny_corpus, tmp_path):
    truth, clips = both(shards, tiny_corpus, tmp_path, "scannet", ("depth", "extrinsics"))
    np.testing.assert_allclose(
        clips["depth"].astype(np.float32), truth["depth"].astype(np.float32), rtol=2e-3, atol=1e-3
    )  # millimetre PNGs, float16 storage
    np.testing.assert_allclose(clips["extrinsics"], truth["extrinsics"], atol=1e-5)


def test_realestate10k_cameras_pick_the_frames_at_their_timestamps(shards, tiny_corpus, tmp_path):
    truth, clips = both(shards, tiny_corpus, tmp_path, "realestate10k", ("extrinsics",))
    np.testing.assert_allclose(clips["extrinsics"], truth["extrinsics"], atol=1e-6)
    np.testing.assert_array_equal(clips["video"], truth["video"])


def test_box_tracks_give_the_boxes_of_each_clip(shards, tiny_corpus, tmp_path):
    truth, clips = both(shards, tiny_corpus, tmp_path, "box_tracks", ("boxes", "box_visible"))
    np.testing.assert_array_equal(clips["box_visible"], truth["box_visible"])
    visible = truth["box_visible"]
    np.testing.assert_allclose(clips["boxes"][visible], truth["boxes"][visible], atol=1e-4)
    np.testing.assert_array_equal(clips["video"], truth["video"])


def test_source_files_list_what_the_readout_reads(shards, tiny_corpus, tmp_path):
    path = export_benchmark(tiny_corpus, "readout-test", "box_tracks", tmp_path)
    files = source_files(SourceConfig("box_tracks", str(path), str(path), 1), shards)
    assert {file.suffix for file in files} == {".json", ".mp4"}
    synthetic = source_files(SourceConfig("synthetic", "", "", 1), shards)
    assert synthetic and all(file.name.startswith("readout-") for file in synthetic)


def test_clips_are_padded_to_the_most_points_and_cut_with_a_stride():
    def sample(name: str, points: int) -> Sample:
        tracks = np.arange(points * 9 * 2, dtype=np.float32).reshape(points, 9, 2)
        video = np.zeros((9, 8, 8, 3), np.uint8)
        return Sample(name, video, tracks=tracks, visible=np.ones((points, 9), bool))

    clips = clips_from_samples(
        [sample("a", 1), sample("b", 3)], ("video", "tracks", "visible"), 3, 8, frame_stride=2
    )
    assert clips["tracks"].shape == (2, 3, 3, 2)  # one 3-frame clip (frames 0, 2, 4) each
    np.testing.assert_array_equal(clips["tracks"][0, 0, :, 0], [0, 4, 8])
    np.testing.assert_array_equal(clips["visible"][0], [[True] * 3, [False] * 3, [False] * 3])


def test_missing_truth_missing_video_and_short_videos_are_reported(tiny_corpus, tmp_path):
    video = np.zeros((3, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="clip has no \\['depth'\\] ground truth"):
        clips_from_samples([Sample("clip", video)], ("video", "depth"), 2, 8, 1)
    with pytest.raises(ValueError, match="has the 5 frames a clip needs"):
        clips_from_samples([Sample("clip", video)], ("video",), 5, 8, 1)
    path = export_benchmark(tiny_corpus, "readout-test", "realestate10k", tmp_path)
    for video_file in path.glob("*.mp4"):
        video_file.unlink()
    source = SourceConfig("realestate10k", str(path), str(path), 1)
    with pytest.raises(FileNotFoundError, match="expected one video named"):
        load_readout_split(source, "test", tmp_path, ("video", "extrinsics"), FRAMES, SIZE)


def test_a_tapvid_folder_is_read_pickle_by_pickle_in_name_order(shards, tiny_corpus, tmp_path):
    """TAP-Vid-Kinetics as published: a folder of NNNN_of_MMMM.pkl, each a list of records with
    JPEG frames, beside its README and CSV."""
    keys = ("video", "tracks", "visible")
    folder, alone = tmp_path / "tapvid_kinetics", []
    folder.mkdir()
    for number, split in enumerate(("readout-test", "readout-train")):  # names sort test first
        path = export_benchmark(tiny_corpus, split, "tapvid", tmp_path / "export")
        (record,) = pickle.loads(path.read_bytes()).values()
        record["video"] = [jpeg(frame) for frame in record["video"]]
        (folder / f"{number:04d}_of_0002.pkl").write_bytes(pickle.dumps([record]))
        source = SourceConfig("tapvid", str(path), str(path), 1)
        alone.append(load_readout_split(source, "test", shards, keys, FRAMES, SIZE))
    (folder / "README.md").write_text("TAP-Vid-Kinetics\n")
    (folder / "tapvid_kinetics.csv").write_text("youtube_id,start_time_sec\n")
    source = SourceConfig("tapvid", str(folder), str(folder), 1)
    clips = load_readout_split(source, "test", shards, keys, FRAMES, SIZE)
    assert len(clips["video"]) == sum(len(each["video"]) for each in alone) == 6
    for key in ("tracks", "visible"):
        for row, each in zip((0, 3), alone, strict=True):
            count = each[key].shape[1]
            np.testing.assert_array_equal(clips[key][row : row + 3, :count], each[key])
    # JPEG frames decode close to the pixels they were encoded from
    difference = np.abs(clips["video"][:3].astype(int) - alone[0]["video"]).mean()
    assert difference < 4, difference
    files = source_files(source, shards)
    assert [file.name for file in files] == ["0000_of_0002.pkl", "0001_of_0002.pkl"] * 2
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no TAP-Vid pickle"):
        load_readout_split(SourceConfig("tapvid", str(empty), str(empty), 1), "test", shards,
                           keys, FRAMES, SIZE)  # fmt: skip


@pytest.mark.parametrize(
    ("format", "keys"),
    [
        ("tapvid", ("tracks", "visible")),
        ("scannet", ("depth", "intrinsics", "extrinsics")),
        ("realestate10k", ("intrinsics", "extrinsics")),
        ("box_tracks", ("boxes", "box_visible")),
    ],
)
def test_a_split_past_the_memory_budget_is_mapped_from_disk_unchanged(
    shards, tiny_corpus, tmp_path, format, keys
):
    path = export_benchmark(tiny_corpus, "readout-test", format, tmp_path)
    source, keys = SourceConfig(format, str(path), str(path), 1), ("video", *keys)
    held = load_readout_split(source, "test", shards, keys, FRAMES, SIZE)
    (tmp_path / "scratch").mkdir()
    budget = HostBudget(tmp_path / "scratch", 0)  # every array on disk
    mapped = load_readout_split(source, "test", shards, keys, FRAMES, SIZE, budget)
    assert set(mapped) == set(held)
    for key in keys:
        assert isinstance(mapped[key], np.memmap), key
        assert (mapped[key].dtype, mapped[key].shape) == (held[key].dtype, held[key].shape), key
        np.testing.assert_array_equal(mapped[key], held[key])


def test_ssv2_clips_past_the_budget_are_mapped_and_their_labels_stay_in_memory(tmp_path):
    write_ssv2(tmp_path, {"train": [0, 1, 2, 3], "validation": [4]})
    labels = tmp_path / "labels"
    videos = str(tmp_path / "20bn-something-something-v2")
    source = SourceConfig(
        "ssv2", str(labels / "train.json"), str(labels / "validation.json"), 1, videos
    )
    keys = ("video", "label")
    held = load_readout_split(source, "train", tmp_path, keys, FRAMES, SIZE)
    (tmp_path / "scratch").mkdir()
    budget = HostBudget(tmp_path / "scratch", held["video"][0].nbytes)  # the second clip spills
    mapped = load_readout_split(source, "train", tmp_path, keys, FRAMES, SIZE, budget)
    assert isinstance(mapped["video"], np.memmap) and not isinstance(mapped["label"], np.memmap)
    np.testing.assert_array_equal(mapped["video"], held["video"])
    assert mapped["label"].tolist() == held["label"].tolist() and mapped["label"].ndim == 1
