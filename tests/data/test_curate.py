import hashlib
import json

import numpy as np
import pytest

from fourds.config import CurateConfig
from fourds.data.curate import curate, resize_ground_truth
from fourds.data.shards import load_split
from fourds.data.video import VideoError, read_video

CFG = CurateConfig(4, 2, 16, 3, 0.0, "center")


def test_clips_shards_and_manifest(tiny_corpus, tmp_path):
    manifest = curate(tiny_corpus, tmp_path, CFG)
    # 12 frames, span 7 -> one clip per video.
    assert len(manifest["clips"]) == 4 and manifest["rejected"] == []
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == manifest
    pretrain = load_split(tmp_path / "shards", "pretrain")
    assert pretrain["video"].shape == (2, 4, 16, 16, 3)
    assert pretrain["depth"].shape == (2, 4, 16, 16)
    for clip in manifest["clips"]:
        split = load_split(tmp_path / "shards", clip["split"])
        shard_rows = [c for c in manifest["clips"] if c["split"] == clip["split"]]
        row = shard_rows.index(clip)
        assert hashlib.sha256(split["video"][row].tobytes()).hexdigest() == clip["sha256"]
        assert clip["frames"] == {"start": 0, "stop": 7, "stride": 2}


def test_clip_frames_follow_the_stride(tiny_corpus, tmp_path):
    curate(tiny_corpus, tmp_path, CurateConfig(4, 2, 32, 8, 0.0, "center"))
    decoded = read_video(tiny_corpus / "pretrain" / "00000.mp4")
    clip = load_split(tmp_path / "shards", "pretrain")["video"][0]
    np.testing.assert_array_equal(clip, decoded[[0, 2, 4, 6]])


def test_too_short_video_is_rejected(tiny_corpus, tmp_path):
    span_15 = CurateConfig(8, 2, 16, 4, 0.0, "center")  # a clip spans 15 > 12 frames
    manifest = curate(tiny_corpus, tmp_path, span_15)
    assert manifest["clips"] == []
    assert all("too short" in entry["reason"] for entry in manifest["rejected"])


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
