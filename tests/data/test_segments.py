"""The memory-mapped pretrain segments: the same bytes as `load_split`, clear errors otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from fourds.data.segments import SegmentStore
from fourds.data.shards import ShardError, ShardWriter, load_split


def write_segments(shard_dir, segments: np.ndarray, per_shard: int) -> None:
    """`segments` [N, F, S, S, 3] as pretrain shards of `per_shard` rows, with a second array
    stored after the video as curated shards have."""
    writer = ShardWriter(shard_dir, "pretrain", per_shard)
    for index, segment in enumerate(segments):
        writer.add({"video": segment, "label": np.array(f"class{index}")})
    writer.flush()


def test_the_store_maps_the_segments_load_split_reads(tiny_shards):
    store = SegmentStore.open(tiny_shards)
    videos = load_split(tiny_shards, "pretrain", ("video",))["video"]
    assert len(store) == len(videos) and store.frames == videos.shape[1]
    for index in range(len(store)):
        assert np.array_equal(store[index], videos[index])
        assert store[index].dtype == np.uint8 and not store[index].flags.writeable


def test_indices_run_across_shards_in_order(tmp_path):
    segments = np.random.default_rng(0).integers(0, 256, (7, 5, 8, 8, 3), dtype=np.uint8)
    write_segments(tmp_path, segments, per_shard=3)  # shards of 3, 3 and 1 segments
    store = SegmentStore.open(tmp_path)
    assert len(store) == 7
    assert all(np.array_equal(store[index], segments[index]) for index in range(7))
    with pytest.raises(IndexError, match="segment 7 out of range"):
        store[7]


def rewrite(path, save, **arrays) -> None:
    """Replace the shard at `path` by `arrays` saved with `save` (np.savez or a variant)."""
    with open(path, "wb") as handle:
        save(handle, **arrays)


@pytest.fixture
def three_shards(tmp_path):
    segments = np.random.default_rng(1).integers(0, 256, (6, 5, 8, 8, 3), dtype=np.uint8)
    write_segments(tmp_path, segments, per_shard=2)
    return tmp_path


def test_no_shards_says_to_curate(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro curate"):
        SegmentStore.open(tmp_path)


def test_a_missing_shard_is_named(three_shards):
    (three_shards / "pretrain-001.npz").unlink()
    with pytest.raises(FileNotFoundError, match="pretrain-001.npz is missing"):
        SegmentStore.open(three_shards)


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_a_truncated_shard_is_named(three_shards, keep):
    path = three_shards / "pretrain-002.npz"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ShardError, match="pretrain-002.npz"):
        SegmentStore.open(three_shards)


def test_a_shard_whose_video_ends_early_is_named_truncated(three_shards):
    """A zip directory that is intact while the video's bytes are short (a damaged copy)."""
    path = three_shards / "pretrain-000.npz"
    video = np.load(path)["video"]
    rewrite(path, np.savez, video=video[:1])
    header = str(video[:1].shape).encode()  # "(1, 5, 8, 8, 3)": claim 9 segments instead
    path.write_bytes(path.read_bytes().replace(header, header.replace(b"(1,", b"(9,")))
    with pytest.raises(ShardError, match="pretrain-000.npz is truncated"):
        SegmentStore.open(three_shards)


def test_a_compressed_shard_is_refused_by_name(three_shards):
    path = three_shards / "pretrain-001.npz"
    rewrite(path, np.savez_compressed, video=np.load(path)["video"])
    with pytest.raises(ShardError, match="pretrain-001.npz stores 'video.npy' compressed"):
        SegmentStore.open(three_shards)


def test_shards_of_different_segment_shapes_are_refused(three_shards):
    path = three_shards / "pretrain-002.npz"
    rewrite(path, np.savez, video=np.zeros((2, 6, 8, 8, 3), np.uint8))
    with pytest.raises(ShardError, match="pretrain-002.npz: video uint8 \\(2, 6, 8, 8, 3\\)"):
        SegmentStore.open(three_shards)
