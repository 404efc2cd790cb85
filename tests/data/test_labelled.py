"""Classification benchmarks in their published layouts (Something-Something v2, Kinetics) as
readout splits: classes from the benchmark's label list, labels matched as the benchmark does,
videos found at any depth, missing ones skipped and reported, malformed files named."""

from __future__ import annotations

import numpy as np
import pytest

from fourds.config import SourceConfig
from fourds.data.benchmarks import load_readout_split, readout_classes, source_files
from fourds.data.labelled import clip_index
from fourds.data.readers import ReaderError, kinetics, ssv2
from tests.benchmark_files import (
    KINETICS_LABELS,
    SSV2_TEMPLATES,
    class_colour,
    write_kinetics,
    write_ssv2,
)

FRAMES, SIZE = 4, 16
KEYS = ("video", "label")


def ssv2_source(root, stride: int = 1) -> SourceConfig:
    labels = root / "labels"
    videos = root / "20bn-something-something-v2"
    return SourceConfig(
        "ssv2", str(labels / "train.json"), str(labels / "validation.json"), stride, str(videos)
    )


def kinetics_source(root) -> SourceConfig:
    csv = root / "annotations"
    return SourceConfig("kinetics", str(csv / "train.csv"), str(csv / "val.csv"), 1, str(root))


def assert_class_colours(clips: dict[str, np.ndarray], classes: tuple[str, ...]) -> None:
    """Every clip shows the flat colour of its label's class (away from the moving bar)."""
    for video, label in zip(clips["video"], clips["label"], strict=True):
        corner = video[:, -2:, -2:].reshape(-1, 3).mean(axis=0)
        np.testing.assert_allclose(corner, class_colour(classes.index(label)), atol=12)


def test_ssv2_classes_follow_the_label_list_and_templates_lose_their_brackets(tmp_path):
    write_ssv2(tmp_path, {"train": [0, 3], "validation": [5]})
    classes = ssv2.classes(tmp_path / "labels" / "labels.json")
    assert classes == tuple(t.replace("[", "").replace("]", "") for t in SSV2_TEMPLATES)
    assert classes[0] == "Putting something on something"  # index 0, written last
    videos = ssv2.split(tmp_path / "labels" / "train.json")
    assert [(video.file, video.label) for video in videos] == [
        ("1000.webm", "Putting something on something"),
        ("1001.webm", "Tearing something into two pieces"),
    ]


def test_ssv2_gives_one_centred_clip_per_video_with_its_class(tmp_path, capsys):
    write_ssv2(tmp_path, {"train": [0, 1, 2, 3], "validation": [4, 5, 0]})
    source = ssv2_source(tmp_path, stride=2)
    classes = readout_classes(source)
    assert len(classes) == len(SSV2_TEMPLATES)  # the label list, not the labels seen
    train = load_readout_split(source, "train", tmp_path, KEYS, FRAMES, SIZE)
    test = load_readout_split(source, "test", tmp_path, KEYS, FRAMES, SIZE)
    assert train["video"].shape == (4, FRAMES, SIZE, SIZE, 3) and len(test["video"]) == 3
    assert list(test["label"]) == [classes[4], classes[5], classes[0]]
    assert_class_colours(train, classes)
    # 10 frames, every 2nd: frames 1, 3, 5, 7 (the centred span of 7), the bar at x = 3t
    bar = train["video"][0, :, 8].astype(int).sum(axis=-1).argmax(axis=-1)
    assert list(bar) == sorted(bar) and len(set(bar)) == FRAMES
    assert capsys.readouterr().err == ""  # nothing missing, nothing said
    files = source_files(source, tmp_path)
    assert {file.name for file in files} >= {"labels.json", "train.json", "1000.webm"}
    assert len([file for file in files if file.suffix == ".webm"]) == 7


def test_kinetics_reads_per_class_and_flat_folders(tmp_path):
    write_kinetics(tmp_path, {"train": [0, 1, 2, 3, 4, 5], "val": [2, 5]})
    assert (tmp_path / "train" / "air drumming" / "vid1_000001_000011.mp4").is_file()
    assert (tmp_path / "val" / "vid7_000007_000017.mp4").is_file()
    source = kinetics_source(tmp_path)
    classes = readout_classes(source)
    assert classes == tuple(sorted(KINETICS_LABELS))
    train = load_readout_split(source, "train", tmp_path, KEYS, FRAMES, SIZE)
    test = load_readout_split(source, "test", tmp_path, KEYS, FRAMES, SIZE)
    assert list(train["label"]) == list(KINETICS_LABELS)
    assert list(test["label"]) == ["answering questions", "archery"]
    assert_class_colours(train, tuple(KINETICS_LABELS))


def test_missing_videos_are_skipped_and_reported_once(tmp_path, capsys):
    write_ssv2(tmp_path / "ssv2", {"train": [0, 1, 2, 3, 4, 5], "validation": [0]},
               skip=("1001", "1002", "1003", "1005"))  # fmt: skip
    clips = load_readout_split(ssv2_source(tmp_path / "ssv2"), "train", tmp_path, KEYS, 4, SIZE)
    assert len(clips["video"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(
        "train.json: 4 of 6 listed videos are not under "
        f"{tmp_path / 'ssv2' / '20bn-something-something-v2'}, skipped: 1001.webm, 1002.webm, "
        "1003.webm, ..."
    )
    write_kinetics(tmp_path / "k", {"train": [0, 1], "val": [1]}, skip=("vid2",))
    with pytest.raises(ReaderError, match="val.csv: none of its 1 videos is under"):
        load_readout_split(kinetics_source(tmp_path / "k"), "test", tmp_path, KEYS, 4, SIZE)


def test_a_clip_is_centred_and_a_short_video_repeats_its_last_frame():
    np.testing.assert_array_equal(clip_index(10, 4, 2), [1, 3, 5, 7])
    np.testing.assert_array_equal(clip_index(11, 4, 1), [3, 4, 5, 6])
    np.testing.assert_array_equal(clip_index(5, 4, 2), [0, 2, 4, 4])


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("labels.json", "{not json", "labels.json: not a JSON object (a key expected at offset 1)"),
        ("labels.json", '{"a": "0", "b": "2"}', "labels.json: the class indices are not 0 to 1"),
        ("labels.json", '{"a": "zero"}', "labels.json: a class index is not an integer"),
        ("train.json", '{"id": "1"}', "train.json: not a JSON list"),
        ("train.json", '[{"id": "7"}]', "train.json: entry 0 has no string id and template"),
        (
            "train.json",
            '[{"id": "7", "template": "Juggling [something]"}]',
            "train.json: entry 0 (id 7): class 'Juggling something' is not one of the 6 classes of",
        ),
    ],
)
def test_malformed_ssv2_files_are_named(tmp_path, file, content, message):
    write_ssv2(tmp_path, {"train": [0], "validation": [0]})
    (tmp_path / "labels" / file).write_text(content)
    with pytest.raises(ReaderError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_readout_split(ssv2_source(tmp_path), "train", tmp_path, KEYS, FRAMES, SIZE)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("label,youtube_id,time_start\n", r"val.csv: no \['time_end'\] column\(s\)"),
        ("juggling,x,1,11,val\n", "val.csv: line 2: class 'juggling' is not one of the 6 classes"),
        ("abseiling,x,1.5,11,val\n", "val.csv: line 2: time '1.5' is not a whole number"),
        (",x,1,11,val\n", "val.csv: line 2 has no label or no youtube_id"),
    ],
)
def test_malformed_kinetics_files_are_named(tmp_path, row, message):
    write_kinetics(tmp_path, {"train": list(range(6)), "val": []})
    csv = tmp_path / "annotations" / "val.csv"
    header = "" if row.startswith("label") else csv.read_text()
    csv.write_text(header + row)
    with pytest.raises(ReaderError, match=message):
        load_readout_split(kinetics_source(tmp_path), "test", tmp_path, KEYS, FRAMES, SIZE)


def test_kinetics_rows_name_their_videos_as_the_downloaders_do(tmp_path):
    csv = tmp_path / "val.csv"
    csv.write_text('label,youtube_id,time_start,time_end,split\n"a, b",--33Lscn6sk,4,14,val\n')
    (video,) = kinetics.split(csv)
    assert video.file == "--33Lscn6sk_000004_000014.mp4" and video.label == "a, b"
    assert video.entry == f"{csv}: line 2"
