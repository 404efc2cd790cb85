import dataclasses
import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from fourds.atomic import file_digest
from fourds.config import CurateConfig
from fourds.data.curate import curate, resize_ground_truth
from fourds.data.shards import SPLITS, ShardIndex, load_split, shard_paths
from fourds.data.video import VideoError, read_video

CFG = CurateConfig(4, 2, 6, 16, 3, 0.0, "center")


def test_clips_shards_and_manifest(tiny_corpus, tmp_path):
    manifest = curate(tiny_corpus, tmp_path, CFG)
    # 12 frames: span 7 -> one readout clip per video; two 6-frame pretrain segments per video.
    splits = [clip["split"] for clip in manifest["clips"]]
    assert splits == ["pretrain"] * 4 + ["readout-train", "readout-test"]
    assert manifest["rejected"] == []
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == manifest
    pretrain = load_split(tmp_path / "shards", "pretrain")
    assert pretrain["video"].shape == (4, 6, 16, 16, 3)
    assert pretrain["depth"].shape == (4, 6, 16, 16)
    assert pretrain["tracks"].shape[2] == 6
    for clip in manifest["clips"]:
        split = load_split(tmp_path / "shards", clip["split"])
        shard_rows = [c for c in manifest["clips"] if c["split"] == clip["split"]]
        row = shard_rows.index(clip)
        assert hashlib.sha256(split["video"][row].tobytes()).hexdigest() == clip["sha256"]
        if clip["split"] == "pretrain":
            start = 6 * (row % 2)
            assert clip["frames"] == {"start": start, "stop": start + 6, "stride": 1}
            assert clip["source_frames"] == list(range(start, start + 6))
        else:
            assert clip["frames"] == {"start": 0, "stop": 7, "stride": 2}
            assert clip["source_frames"] == [0, 2, 4, 6]


def test_readout_clips_follow_the_stride_and_pretrain_segments_are_consecutive(
    tiny_corpus, tmp_path
):
    curate(tiny_corpus, tmp_path, CurateConfig(4, 2, 6, 32, 8, 0.0, "center"))
    shards = tmp_path / "shards"
    decoded = read_video(tiny_corpus / "readout-test" / "00000.mp4")
    np.testing.assert_array_equal(load_split(shards, "readout-test")["video"][0], decoded[::2][:4])
    decoded = read_video(tiny_corpus / "pretrain" / "00000.mp4")
    segments = load_split(shards, "pretrain")["video"]
    np.testing.assert_array_equal(segments[0], decoded[:6])
    np.testing.assert_array_equal(segments[1], decoded[6:])


def test_readout_clips_do_not_depend_on_the_pretrain_segments(tiny_corpus, tmp_path):
    whole = curate(tiny_corpus, tmp_path / "whole", CurateConfig(4, 2, 12, 16, 3, 0.0, "center"))
    halves = curate(tiny_corpus, tmp_path / "halves", CFG)
    assert [c for c in whole["clips"] if c["split"] == "pretrain"] != [
        c for c in halves["clips"] if c["split"] == "pretrain"
    ]
    for split in ("readout-train", "readout-test"):
        assert [c for c in whole["clips"] if c["split"] == split] == [
            c for c in halves["clips"] if c["split"] == split
        ]
        assert {
            path.name: file_digest(path) for path in (tmp_path / "whole/shards").glob(f"{split}-*")
        } == {
            path.name: file_digest(path) for path in (tmp_path / "halves/shards").glob(f"{split}-*")
        }


@pytest.mark.parametrize(
    ("pretrain_frames", "rejected"),
    [
        (12, ["readout-train", "readout-test"]),
        (13, ["pretrain", "pretrain", "readout-train", "readout-test"]),
    ],
)
def test_too_short_video_is_rejected(tiny_corpus, tmp_path, pretrain_frames, rejected):
    # A readout clip spans 15 > 12 frames; a pretrain segment of 12 fits, one of 13 does not.
    cfg = CurateConfig(8, 2, pretrain_frames, 16, 4, 0.0, "center")
    manifest = curate(tiny_corpus, tmp_path, cfg)
    assert [Path(entry["source"]).parent.name for entry in manifest["rejected"]] == rejected
    for entry in manifest["rejected"]:
        needs = "a clip needs 15" if "readout" in entry["source"] else "a segment needs 13"
        assert entry["reason"] == f"too short: 12 frames, {needs}"
    assert len(manifest["clips"]) == 4 - len(rejected)


def test_read_video_names_the_file(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(VideoError, match="broken.mp4"):
        read_video(path)


def test_resize_ground_truth_samples_pixels_and_scales_positions():
    depth = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    intrinsics = np.array([[[4.0, 0, 2.0], [0, 4.0, 2.0], [0, 0, 1]]], np.float32)
    truth = {
        "depth": depth,
        "instances": depth.astype(np.uint8),
        "intrinsics": intrinsics,
        "extrinsics": np.eye(4)[None],
        "tracks": np.array([[[3.0, 1.0]]], np.float32),  # one track, one frame: (x, y)
        "boxes": np.array([[[0.0, 2.0, 4.0, 4.0]]], np.float32),
    }
    resized = resize_ground_truth(truth, (4, 4), 2)
    np.testing.assert_array_equal(resized["depth"][0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(resized["instances"][0], [[5, 7], [13, 15]])
    np.testing.assert_allclose(resized["intrinsics"][0], [[2, 0, 1], [0, 2, 1], [0, 0, 1]])
    np.testing.assert_allclose(resized["tracks"][0, 0], [1.5, 0.5])
    np.testing.assert_allclose(resized["boxes"][0, 0], [0, 1, 2, 2])


def test_load_split_reads_only_the_keys_asked_for(tiny_corpus, tmp_path):
    curate(tiny_corpus, tmp_path, CFG)
    shards = tmp_path / "shards"
    assert set(load_split(shards, "pretrain", ("video",))) == {"video"}
    assert {"video", "depth", "tracks", "boxes", "label"} <= set(load_split(shards, "pretrain"))
    with pytest.raises(KeyError, match="has no \\['flow'\\]"):
        load_split(shards, "pretrain", ("video", "flow"))


def test_webdataset_pretrain_shards_hold_what_npz_ones_do(tiny_corpus, tmp_path):
    npz = curate(tiny_corpus, tmp_path / "npz", CFG)
    tar = curate(
        tiny_corpus, tmp_path / "tar", dataclasses.replace(CFG, pretrain_format="webdataset")
    )
    shards = {fmt: tmp_path / fmt / "shards" for fmt in ("npz", "tar")}
    assert sorted(path.name for path in shards["tar"].iterdir()) == [
        "pretrain-000.tar", "pretrain-001.tar", "pretrain-index.json",
        "readout-test-000.npz", "readout-test-index.json",
        "readout-train-000.npz", "readout-train-index.json",
    ]  # fmt: skip
    for ours, theirs in zip(tar["clips"], npz["clips"], strict=True):
        suffix = ".tar" if ours["split"] == "pretrain" else ".npz"
        assert ours == {**theirs, "shard": theirs["shard"].replace(".npz", suffix)}
    for split in SPLITS:
        ours, theirs = (load_split(shards[fmt], split) for fmt in ("tar", "npz"))
        assert ours.keys() == theirs.keys()
        for key in ours:  # NaN where a box is not visible: equal when both are NaN
            np.testing.assert_array_equal(ours[key], theirs[key], strict=True)
    for fmt, folder in shards.items():
        index = ShardIndex.from_json((folder / "pretrain-index.json").read_text(), fmt)
        assert index.format == {"npz": "npz", "tar": "webdataset"}[fmt]
        assert [shard.sha256 for shard in index.shards] == [
            file_digest(path) for path in shard_paths(folder, "pretrain")
        ]
    with tarfile.open(shards["tar"] / "pretrain-001.tar") as archive:
        fields = json.load(archive.extractfile("pretrain-001-000000.json"))
    assert fields == tar["clips"][3]  # shards of 3: the fourth segment opens the second shard
