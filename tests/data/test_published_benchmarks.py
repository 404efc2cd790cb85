"""Perception Test point tracks and Waymo Open camera boxes in their published layouts (written
by tests.benchmark_files from the formats' documentation) read back through
`load_readout_split` as the curated synthetic clips they came from; malformed and hostile files
stop with one line naming the file, where the data comes from and its terms."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fourds.config import CurateConfig, SourceConfig
from fourds.data.benchmarks import load_readout_split, source_files
from fourds.data.curate import curate
from fourds.data.readers import ReaderError
from fourds.data.readers import perception_test as perception_test_reader
from fourds.data.readers import waymo as waymo_reader
from fourds.data.shards import load_split
from fourds.data.spill import HostBudget
from tests.benchmark_files import write_perception_test, write_waymo
from tests.data.test_benchmarks import FRAMES, SIZE

POINTS, BOXES = ("tracks", "visible"), ("boxes", "box_visible")


@pytest.fixture(scope="module")
def shards(tiny_corpus, tmp_path_factory):
    """The tiny corpus curated to FRAMES-frame SIZE x SIZE readout clips."""
    root = tmp_path_factory.mktemp("curated")
    curate(tiny_corpus, root, CurateConfig(FRAMES, 1, 12, SIZE, 8, 0.0, "center"))
    return root / "shards"


@pytest.fixture(scope="module")
def perception_test(tiny_corpus, tmp_path_factory):
    return write_perception_test(tiny_corpus, tmp_path_factory.mktemp("perception_test"))


@pytest.fixture(scope="module")
def waymo(tiny_corpus, tmp_path_factory):
    return write_waymo(tiny_corpus, tmp_path_factory.mktemp("waymo_open"))


def pt_source(root) -> SourceConfig:
    return SourceConfig(
        "perception_test", str(root / "all_train.json"), str(root / "all_valid.json"), 1,
        str(root / "videos"),
    )  # fmt: skip


def waymo_source(root) -> SourceConfig:
    return SourceConfig("waymo_open", str(root / "training"), str(root / "validation"), 1)


def test_perception_test_gives_the_annotated_points_of_each_clip(shards, perception_test):
    keys = ("video", *POINTS)
    truth = load_split(shards, "readout-test", keys)
    clips = load_readout_split(pt_source(perception_test), "test", shards, keys, FRAMES, SIZE)
    np.testing.assert_array_equal(clips["video"], truth["video"])  # the video, stretched
    for clip in range(len(truth["video"])):
        seen = truth["visible"][clip].any(axis=1)
        count = int(seen.sum())
        visible = truth["visible"][clip, seen]
        np.testing.assert_array_equal(clips["visible"][clip, :count], visible)
        assert not clips["visible"][clip, count:].any()
        np.testing.assert_allclose(
            clips["tracks"][clip, :count][visible], truth["tracks"][clip, seen][visible], atol=1e-4
        )


def test_perception_test_entries_say_whether_the_camera_moves(perception_test, tmp_path):
    """metadata.is_camera_moving where it is a boolean (the baseline notebook's split), else
    None."""
    entries = json.loads((perception_test / "all_valid.json").read_text())
    path, seen = tmp_path / "all_valid.json", []
    for flag in (True, False, "yes", None):
        entries["video_0001"]["metadata"]["is_camera_moving"] = flag
        path.write_text(json.dumps(entries))
        seen += [entry.camera_moving for entry in perception_test_reader.read_point_tracks(path)]
    assert seen == [True, False, None, None]


def test_an_annotation_file_is_parsed_again_only_when_its_bytes_change(
    perception_test, tmp_path, monkeypatch
):
    parsed, entries = [], perception_test_reader._entries
    monkeypatch.setattr(
        perception_test_reader,
        "_entries",
        lambda path, chunks, size: parsed.append(path) or entries(path, chunks, size),
    )
    videos = json.loads((perception_test / "all_valid.json").read_text())
    videos["video_0001"]["metadata"]["is_camera_moving"] = "no"  # not a boolean: None
    path, text = tmp_path / "all_valid.json", json.dumps(videos)
    path.write_text(text)
    first = perception_test_reader.read_point_tracks(path)
    again = perception_test_reader.read_point_tracks(path)
    assert [entry.camera_moving for entry in first + again] == [None, None] and len(parsed) == 1
    path.write_text(text.replace('"no"', "true"))  # the same size, at once
    assert perception_test_reader.read_point_tracks(path)[0].camera_moving is True
    assert len(parsed) == 2


def test_waymo_front_camera_gives_each_objects_boxes(shards, waymo):
    keys = ("video", *BOXES)
    truth = load_split(shards, "readout-test", keys)
    clips = load_readout_split(waymo_source(waymo), "test", shards, keys, FRAMES, SIZE)
    labelled = truth["box_visible"].any(axis=(0, 2))  # objects the box file names
    visible = truth["box_visible"][:, labelled]
    np.testing.assert_array_equal(clips["box_visible"], visible)
    np.testing.assert_allclose(
        clips["boxes"][visible], truth["boxes"][:, labelled][visible], atol=1e-4
    )  # the FRONT camera's boxes, not SIDE_LEFT's, whose rows come first
    # the FRONT frames in time order: JPEG, resized bilinearly (not by area as curation)
    difference = np.abs(clips["video"].astype(int) - truth["video"]).mean()
    flipped = np.abs(clips["video"].astype(int) - truth["video"][:, :, ::-1]).mean()
    assert difference < 8 and difference < flipped / 2, (difference, flipped)


@pytest.mark.parametrize("format", ["perception_test", "waymo_open"])
def test_a_published_split_past_the_budget_is_mapped_from_disk_unchanged(
    shards,
    perception_test,
    waymo,
    tmp_path,
    format,
):
    source = pt_source(perception_test) if format == "perception_test" else waymo_source(waymo)
    keys = ("video", *(POINTS if format == "perception_test" else BOXES))
    held = load_readout_split(source, "train", shards, keys, FRAMES, SIZE)
    mapped = load_readout_split(
        source, "train", shards, keys, FRAMES, SIZE, HostBudget(tmp_path, 0)
    )
    for key in keys:
        assert isinstance(mapped[key], np.memmap), key
        np.testing.assert_array_equal(mapped[key], held[key])


def test_source_files_are_the_annotations_and_the_videos_read(shards, perception_test, waymo):
    files = source_files(pt_source(perception_test), shards)
    assert [file.name for file in files] == [
        "all_train.json",
        "video_0000.mp4",
        "all_valid.json",
        "video_0001.mp4",
    ]  # fmt: skip  (video_9999 has no point tracks: neither read nor listed)
    files = source_files(waymo_source(waymo), shards)
    assert [file.parent.name for file in files] == ["camera_image", "camera_box"] * 2
    assert [file.parents[1].name for file in files] == ["training"] * 2 + ["validation"] * 2


def test_malformed_perception_test_files_name_the_entry_and_the_terms(
    perception_test, tmp_path, monkeypatch
):
    good = json.loads((perception_test / "all_valid.json").read_text())
    root = tmp_path / "pt"
    (root / "videos").mkdir(parents=True)
    for video in (perception_test / "videos").iterdir():
        (root / "videos" / video.name).write_bytes(video.read_bytes())
    source = pt_source(root)

    def error(entries) -> str:
        path = root / "all_valid.json"
        path.write_text(entries if isinstance(entries, str) else json.dumps(entries))
        with pytest.raises((ReaderError, FileNotFoundError)) as raised:
            load_readout_split(source, "test", tmp_path, ("video", *POINTS), FRAMES, SIZE)
        message = str(raised.value)
        assert "\n" not in message and message.startswith(str(root)), message
        return message

    assert "CC BY 4.0" in error('{"video_0001": ')
    entry = good["video_0001"]
    track = entry["point_tracking"][0]
    yx_rows = [list(pair) for pair in zip(*track["points"], strict=True)]  # [K, 2]
    cases = {
        "points must be 2 rows (y, x)": {**track, "points": yx_rows},
        "frame_ids are not distinct frames of [0, 12)": {
            **track,
            "frame_ids": [12, *track["frame_ids"][1:]],
        },  # fmt: skip
        "frame_ids is not a non-empty list": {**track, "frame_ids": "0"},
    }
    assert len(track["frame_ids"]) > 2  # else [K, 2] is two rows too
    for expected, broken in cases.items():
        message = error({"video_0001": {**entry, "point_tracking": [broken]}})
        assert f"{root / 'all_valid.json'}: video_0001: point track 0: {expected}" in message
    entry_frames = {**entry, "metadata": {**entry["metadata"], "num_frames": 13}}
    assert "metadata.num_frames is 13, video_0001.mp4 decodes to 12 frames" in error(
        {"video_0001": entry_frames}
    )
    (root / "videos" / "video_0001.mp4").unlink()
    message = error(good)
    assert "1 of the 1 point-tracked videos are not there (video_0001.mp4" in message
    assert message.endswith("github.com/google-deepmind/perception_test, under CC BY 4.0)")
    monkeypatch.setattr(perception_test_reader, "MAX_ANNOTATION_BYTES", 100)
    assert "MiB, over the 0 MiB an annotation file may take" in error(good)
    (root / "all_valid.json").unlink()
    with pytest.raises(FileNotFoundError, match="no Perception Test annotation file .*CC BY 4.0"):
        load_readout_split(source, "test", tmp_path, ("video", *POINTS), FRAMES, SIZE)


def waymo_error(split, tmp_path) -> str:
    source = SourceConfig("waymo_open", str(split), str(split), 1)
    with pytest.raises((ReaderError, FileNotFoundError)) as raised:
        load_readout_split(source, "test", tmp_path, ("video", *BOXES), FRAMES, SIZE)
    message = str(raised.value)
    assert "\n" not in message, message
    return message


def copy_split(waymo, tmp_path):
    split = tmp_path / "validation"
    for component in ("camera_image", "camera_box"):
        (split / component).mkdir(parents=True)
        for file in (waymo / "validation" / component).iterdir():
            (split / component / file.name).write_bytes(file.read_bytes())
    (box,) = (split / "camera_box").iterdir()
    (image,) = (split / "camera_image").iterdir()
    return split, image, box


def test_malformed_waymo_files_name_the_file_and_the_licence(waymo, tmp_path):
    split, image, box = copy_split(waymo, tmp_path)
    terms = (
        "Waymo Open Dataset v2 from waymo.com/open, under the Waymo Dataset License Agreement "
        "for Non-Commercial Use (waymo.com/open/terms)"
    )

    def error() -> str:
        message = waymo_error(split, tmp_path)
        assert message.endswith(f"{terms})"), message
        return message.removesuffix(f" ({terms})")

    table = pq.read_table(box)
    box.unlink()
    assert error() == f"{box}: no camera_box file for segment {image.stem}"
    box.write_bytes(b"PAR1 not parquet")
    assert error().startswith(f"{box}: not a readable parquet file")
    pq.write_table(table.drop_columns(["key.camera_object_id"]), box)
    assert error() == f"{box}: no column key.camera_object_id (a v2 camera_box file?)"
    size_x = "[CameraBoxComponent].box.size.x"
    as_text = pa.array([str(value) for value in table.column(size_x).to_pylist()])
    pq.write_table(table.set_column(table.schema.get_field_index(size_x), size_x, as_text), box)
    assert error() == f"{box}: column {size_x} is string"
    time = "key.frame_timestamp_micros"
    later = pa.array(table.column(time).to_numpy() + 1, pa.int64())
    pq.write_table(table.set_column(table.schema.get_field_index(time), time, later), box)
    assert error() == f"{box}: a box of camera 1 is at a timestamp with no frame"
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), box)
    assert error() == f"{box}: an object of camera 1 has two boxes in one frame"
    pq.write_table(table, box)
    images = pq.read_table(image)
    column = "[CameraImageComponent].image"
    garbage = pa.array([b"not a JPEG"] * len(images), pa.binary())
    pq.write_table(images.set_column(images.schema.get_field_index(column), column, garbage), image)
    assert error().startswith(
        f"{image}: frame 0 is not a decodable JPEG of at most 36000000 pixels"
    )
    (split / "camera_image").rename(split / "images")
    assert error().startswith(f"{split}: no camera_image/<segment>.parquet")


def test_a_waymo_file_declaring_more_than_its_room_is_refused_before_reading(
    waymo, tmp_path, monkeypatch
):
    split, image, _ = copy_split(waymo, tmp_path)
    monkeypatch.setattr(waymo_reader, "max_decoded_bytes", lambda read: 1000)
    message = waymo_error(split, tmp_path)
    assert message.startswith(f"{image}: columns ") and "decoded, over the 0 MiB" in message
