"""Benchmark readers load fixtures written in the exact public formats into `Sample`s."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from fourds.data.readers import ReaderError
from fourds.data.readers.boxes import read_box_tracks
from fourds.data.readers.realestate10k import read_camera_file
from fourds.data.readers.safe_pickle import UnsafePickleError
from fourds.data.readers.scannet import read_depth_png, read_scene
from fourds.data.readers.tapvid import read_tapvid
from tests.benchmark_files import camera_line, jpeg, write_png16
from tests.conftest import doc_blocks


def tapvid_record(frames: int = 3, points: int = 4, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "video": np.full((frames, 24, 40, 3), (200, 40, 40), np.uint8),
        "points": rng.random((points, frames, 2)).astype(np.float32),
        "occluded": rng.random((points, frames)) < 0.3,
    }


def test_tapvid_davis_dict_becomes_256_pixel_tracks(tmp_path):
    bear = tapvid_record()
    path = tmp_path / "tapvid_davis.pkl"
    path.write_bytes(pickle.dumps({"bear": bear, "car": tapvid_record(seed=1)}))
    samples = read_tapvid(path)
    assert [sample.name for sample in samples] == ["tapvid_davis.pkl:bear", "tapvid_davis.pkl:car"]
    sample = samples[0]
    assert sample.video.shape == (3, 256, 256, 3)
    np.testing.assert_allclose(sample.tracks, bear["points"] * 256)
    np.testing.assert_array_equal(sample.visible, ~bear["occluded"])
    assert abs(sample.video[..., 0].mean() - 200) < 3


def test_tapvid_kinetics_jpeg_frames_and_rgb_stacking_lists(tmp_path):
    record = tapvid_record()
    record["video"] = [jpeg(image) for image in record["video"]]
    path = tmp_path / "0000_of_0010.pkl"
    path.write_bytes(pickle.dumps([record]))
    (sample,) = read_tapvid(path, size=64)
    assert sample.name == "0000_of_0010.pkl:0000" and sample.video.shape == (3, 64, 64, 3)
    assert abs(sample.video[..., 0].mean() - 200) < 6  # JPEG is lossy
    np.testing.assert_allclose(sample.tracks, record["points"] * 64)


def test_tapvid_pickle_that_runs_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return os.system, ("true",)

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"bear": {"video": Payload()}}))
    with pytest.raises(UnsafePickleError, match="refusing to load"):
        read_tapvid(path)


def test_tapvid_record_with_wrong_shapes_is_reported(tmp_path):
    record = tapvid_record()
    record["points"] = record["points"][:, :2]
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps({"bear": record}))
    with pytest.raises(ValueError, match="bad.pkl:bear: points"):
        read_tapvid(path)


MALFORMED_RECORDS = {  # what a TAP-Vid record can hold instead of its arrays -> the record
    "not a dict": lambda record: [record["video"]],
    "a number for a video": lambda record: {**record, "video": 3},
    "numbers for frames": lambda record: {**record, "video": [1 << 40] * 3},  # bytes(n): n zeros
    "text for frames": lambda record: {**record, "video": ["frame"] * 3},
    "frames that are not JPEG": lambda record: {**record, "video": [b"\xff\xd8 not"] * 3},
    "no frames": lambda record: {**record, "video": []},
    "float pixels": lambda record: {**record, "video": record["video"].astype(np.float32)},
    "four channels": lambda record: {**record, "video": record["video"][..., [0, 1, 2, 2]]},
    "empty pixels": lambda record: {**record, "video": record["video"][:, :0]},
    "text for points": lambda record: {**record, "points": "points"},
    "ragged points": lambda record: {**record, "points": [[[0.5, 0.5]], [[0.5]]]},
    "a dict for occluded": lambda record: {**record, "occluded": {"a": 1}},
}


@pytest.mark.parametrize("change", MALFORMED_RECORDS.values(), ids=MALFORMED_RECORDS)
def test_a_malformed_tapvid_record_is_a_one_line_reader_error_naming_the_file(change, tmp_path):
    path = tmp_path / "davis.pkl"
    path.write_bytes(pickle.dumps({"bear": change(tapvid_record())}))
    with pytest.raises(ReaderError) as raised:
        read_tapvid(path)
    message = str(raised.value)
    assert message.startswith(f"{path}:bear: ") and "\n" not in message, message


INTRINSICS = [0.5, 0.9, 0.5, 0.5]  # normalised fx fy cx cy


def pose(rotation: np.ndarray, translation) -> np.ndarray:
    """[R | t] as a 3x4 world-to-camera matrix."""
    return np.concatenate([rotation, np.asarray(translation, float)[:, None]], axis=1)


def test_realestate10k_camera_file(tmp_path):
    angle = 0.3
    turn = np.array(
        [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    )
    path = tmp_path / "0a1b2c.txt"
    path.write_text(
        "https://www.youtube.com/watch?v=abc\n"
        + camera_line(33366667, INTRINSICS, pose(np.eye(3), [0, 0, 0])) + "\n"
        + camera_line(66733333, INTRINSICS, pose(turn, [0.1, -0.2, 1.5])) + "\n"
    )  # fmt: skip
    track = read_camera_file(path, width=640, height=360)
    assert track.url == "https://www.youtube.com/watch?v=abc"
    np.testing.assert_allclose(track.timestamps, [33.366667, 66.733333])
    np.testing.assert_allclose(track.intrinsics[0], [[320, 0, 320], [0, 324, 180], [0, 0, 1]])
    np.testing.assert_allclose(track.extrinsics[1, :3, :3], turn, atol=1e-7)
    np.testing.assert_allclose(track.extrinsics[1, :3, 3], [0.1, -0.2, 1.5], atol=1e-7)
    np.testing.assert_array_equal(track.extrinsics[:, 3], [[0, 0, 0, 1]] * 2)


def test_realestate10k_rejects_malformed_lines_and_non_rotations(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("url\n1 2 3\n")
    with pytest.raises(ValueError, match="bad.txt:2: 3 numbers, expected 19"):
        read_camera_file(path, 640, 360)
    path.write_text("url\n" + camera_line(0, INTRINSICS, pose(1.1 * np.eye(3), [0, 0, 0])) + "\n")
    with pytest.raises(ValueError, match="bad.txt:2: the pose's rotation is off orthonormal"):
        read_camera_file(path, 640, 360)


def write_jpeg(path, image: np.ndarray) -> None:
    path.write_bytes(jpeg(image))


def test_scannet_scene_depth_intrinsics_and_poses(tmp_path):
    scene = tmp_path / "scene0000_00"
    for folder in ("color", "depth", "pose", "intrinsic"):
        (scene / folder).mkdir(parents=True)
    millimetres = np.arange(12 * 16, dtype=np.uint16).reshape(12, 16) * 300  # up to 57 m
    millimetres[0, 0] = 0  # no measurement
    camera_to_world = np.eye(4)
    camera_to_world[:3, 3] = [1.0, 2.0, 3.0]
    for index in (0, 1):
        write_png16(scene / "depth" / f"{index}.png", millimetres + index)
        write_jpeg(scene / "color" / f"{index}.jpg", np.full((24, 32, 3), 90, np.uint8))
        np.savetxt(scene / "pose" / f"{index}.txt", camera_to_world)
    intrinsics = np.array([[20.0, 0, 8, 0], [0, 20, 6, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    np.savetxt(scene / "intrinsic" / "intrinsic_depth.txt", intrinsics)

    np.testing.assert_allclose(read_depth_png(scene / "depth" / "0.png"), millimetres / 1000.0)
    sample = read_scene(scene)
    assert sample.video.shape == (2, 12, 16, 3) and sample.depth.shape == (2, 12, 16)
    np.testing.assert_allclose(sample.depth[1], (millimetres + 1) / 1000.0, rtol=1e-6)
    assert sample.depth[0, 0, 0] == 0  # unmeasured stays 0
    np.testing.assert_allclose(sample.intrinsics[0], intrinsics[:3, :3])
    np.testing.assert_allclose(sample.extrinsics[0, :3, 3], [-1, -2, -3])  # world-to-camera


def test_box_tracks_from_json_and_csv_agree(tmp_path):
    json_path = tmp_path / "boxes.json"
    json_path.write_text(
        json.dumps(
            {
                "frames": 3,
                "objects": [
                    {"id": "car-1", "boxes": [[1, 2, 10, 20], None, [3, 4, 12, 22]]},
                    {"id": 7, "boxes": [None, [0, 0, 5, 5], None]},
                ],
            }
        )
    )
    csv_path = tmp_path / "boxes.csv"
    csv_path.write_text(
        "object,frame,x0,y0,x1,y1\ncar-1,0,1,2,10,20\n7,1,0,0,5,5\ncar-1,2,3,4,12,22\n"
    )
    from_json = read_box_tracks(json_path)
    from_csv = read_box_tracks(csv_path, frames=3)
    for ids, boxes, visible in (from_json, from_csv):
        assert ids == ["car-1", "7"]
        np.testing.assert_array_equal(visible, [[True, False, True], [False, True, False]])
        np.testing.assert_array_equal(boxes[0, 2], [3, 4, 12, 22])
        assert np.isnan(boxes[0, 1]).all()


def test_box_tracks_reject_inverted_boxes(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("object,frame,x0,y0,x1,y1\na,0,10,0,5,5\n")
    with pytest.raises(ValueError, match="object a frame 0: box .* is inverted"):
        read_box_tracks(path)


@pytest.mark.parametrize(
    "timestamps, intrinsics, change, message",
    [
        ((-33366, 0), INTRINSICS, None, r"bad.txt:2: negative timestamp -33366 us"),
        ((0, 0), INTRINSICS, None, r"bad.txt:3: timestamp 0 us does not come after"),
        ((0, 1), [np.nan, 0.9, 0.5, 0.5], None, r"bad.txt:2: number 2 is nan \(not a finite"),
        ((0, 1), [0.0, 0.9, 0.5, 0.5], None, r"bad.txt:2: focal lengths fx=0 fy=0.9 must be > 0"),
        ((0, 1), INTRINSICS, (0, 3, np.inf), r"bad.txt:2: number 11 is inf \(not a finite"),
    ],
)
def test_realestate10k_rejects_bad_timestamps_and_non_finite_cameras(
    tmp_path, timestamps, intrinsics, change, message
):
    extrinsics = pose(np.eye(3), [0, 0, 0])
    if change is not None:
        extrinsics[change[:2]] = change[2]
    path = tmp_path / "bad.txt"
    lines = [camera_line(t, intrinsics, extrinsics) for t in timestamps]
    path.write_text("url\n" + "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message):
        read_camera_file(path, 640, 360)


def test_scannet_non_finite_matrices_are_reported(tmp_path):
    from fourds.data.readers.scannet import read_matrix

    path = tmp_path / "7.txt"
    matrix = np.full((4, 4), -np.inf)  # how ScanNet marks a frame without a pose
    np.savetxt(path, matrix)
    with pytest.raises(ValueError, match=r"7.txt: holds NaN or infinite values"):
        read_matrix(path, (4, 4))


@pytest.mark.parametrize(
    "content, message",
    [
        ("object,frame,x0,y0,x1,y1\na,-1,0,0,5,5\n", r"bad.csv:2: frame -1 is outside the video"),
        ("object,frame,x0,y0,x1,y1\na,3,0,0,5,5\n", r"bad.csv:2: frame 3 is outside the video"),
        ("object,frame,x0,y0,x1,y1\na,0,nan,0,5,5\n", r"box .* is not 4 finite float32"),
    ],
)
def test_box_tracks_reject_bad_frames_and_non_finite_boxes(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_box_tracks(path, frames=3)


def test_box_track_json_must_fit_the_video(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"frames": 10**12, "objects": []}))
    with pytest.raises(
        ValueError, match=r"bad.json: annotates 1000000000000 frames, the video has 3"
    ):
        read_box_tracks(path, frames=3)
    for frames, boxes in [(-1, []), (1, [[0, 0, 1]]), (1, [[0, 0, 1, float("inf")]])]:
        path.write_text(json.dumps({"frames": frames, "objects": [{"id": 1, "boxes": boxes}]}))
        with pytest.raises(ValueError, match=r"bad.json"):
            read_box_tracks(path, frames=3)


def test_tapvid_visible_points_must_be_finite(tmp_path):
    record = tapvid_record()
    record["occluded"][:] = False
    record["points"][1, 2, 0] = np.nan
    path = tmp_path / "davis.pkl"
    path.write_bytes(pickle.dumps({"bear": record}))
    with pytest.raises(ValueError, match=r"davis.pkl:bear: a visible point's position is NaN"):
        read_tapvid(path)


def test_the_box_track_formats_on_the_benchmarks_page_read_the_same(tmp_path):
    json_text, csv_text = [
        block.text
        for block in doc_blocks("docs/benchmarks.md")
        if block.section == "Box tracks" and block.language == "text"
    ]
    (tmp_path / "clip.json").write_text(json_text)
    (tmp_path / "clip.csv").write_text(csv_text)
    from_json = read_box_tracks(tmp_path / "clip.json", frames=3)
    from_csv = read_box_tracks(tmp_path / "clip.csv", frames=3)
    assert from_json[0] == from_csv[0] == ["car-1"]
    np.testing.assert_array_equal(from_json[1], from_csv[1])
    assert from_json[2].tolist() == [[True, False, True]]
