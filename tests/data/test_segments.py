"""The pretrain segments: mapped from a folder or fetched from a URL by index, the same bytes as
`load_split` in either format, clear errors otherwise."""

from __future__ import annotations

import shutil
from pathlib import Path

import fsspec
import numpy as np
import pytest
from dvc.repo import Repo
from fsspec.implementations.memory import MemoryFileSystem

from fourds.data.segments import SegmentStore
from fourds.data.shards import (
    ShardError,
    ShardWriter,
    load_split,
    shard_digests,
    shard_paths,
    write_index,
)
from fourds.data.shards import index as shard_index


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
    with pytest.raises(ShardError, match="pretrain-002.npz: segments uint8 \\(6, 8, 8, 3\\)"):
        SegmentStore.open(three_shards)


# Indexed shards (what curate writes): either format, from a folder or a URL.

SEGMENTS = np.random.default_rng(2).integers(0, 256, (7, 5, 8, 8, 3), dtype=np.uint8)


def write_indexed(shard_dir, fmt: str) -> Path:
    """SEGMENTS as `fmt` pretrain shards of 3, 3 and 1 segments, with their index."""
    writer = ShardWriter(shard_dir, "pretrain", 3, fmt)
    for index, segment in enumerate(SEGMENTS):
        writer.add({"video": segment, "label": np.array(f"class{index}")}, {"row": index})
    writer.flush()
    write_index(shard_dir, "pretrain")
    return Path(shard_dir)


@pytest.fixture
def in_memory(tmp_path):
    """A memory:// URL holding tar shards and their index (an object store stand-in)."""
    shards = write_indexed(tmp_path / "tar", "webdataset")
    memory = fsspec.filesystem("memory")
    url = f"memory://{tmp_path.name}/shards"
    for path in shards.iterdir():
        memory.pipe(f"/{tmp_path.name}/shards/{path.name}", path.read_bytes())
    yield url
    memory.rm(f"/{tmp_path.name}", recursive=True)


def test_both_formats_from_a_folder_or_a_url_give_the_same_segments(tmp_path, in_memory):
    npz, tar = write_indexed(tmp_path / "npz", "npz"), tmp_path / "tar"
    stores = [SegmentStore.open(location) for location in (npz, tar, f"file://{tar}", in_memory)]
    for store in stores:
        assert len(store) == len(SEGMENTS) and store.frames == SEGMENTS.shape[1]
        for index, segment in enumerate(SEGMENTS):
            read = np.asarray(store[index])
            assert read.dtype == np.uint8 and not read.flags.writeable
            assert np.array_equal(read, segment)
            assert np.array_equal(store[index][1:5:2], segment[1:5:2])
    assert stores[0].digests == shard_digests(shard_paths(npz, "pretrain"))
    assert list(stores[3].digests) == [f"{in_memory}/pretrain-00{k}.tar" for k in range(3)]
    assert list(stores[3].digests.values()) == list(stores[1].digests.values())


def test_a_window_at_a_url_fetches_only_its_frames(in_memory, monkeypatch):
    ranges = []
    fetch = MemoryFileSystem.cat_ranges

    def recorded(self, paths, starts, ends, **kwargs):
        ranges.extend(end - start for start, end in zip(starts, ends, strict=True))
        return fetch(self, paths, starts, ends, **kwargs)

    monkeypatch.setattr(MemoryFileSystem, "cat_ranges", recorded)
    segment, frame = SegmentStore.open(in_memory)[4], 8 * 8 * 3
    assert np.array_equal(segment[0:5:2], SEGMENTS[4][0:5:2])
    assert ranges == [frame] * 3  # every other frame: a request each
    ranges.clear()
    assert np.array_equal(segment[1:4], SEGMENTS[4][1:4])
    assert ranges == [3 * frame]  # consecutive frames: one request


def test_an_indexed_store_hashes_no_shard(tmp_path, monkeypatch):
    shards = write_indexed(tmp_path, "webdataset")
    monkeypatch.setattr(shard_index, "file_digest", lambda path: pytest.fail(f"hashed {path}"))
    store = SegmentStore.open(shards)
    assert store.digests == shard_digests(shard_paths(shards, "pretrain"))


def test_a_shard_that_changed_since_curate_indexed_it_is_named(tmp_path):
    shards = write_indexed(tmp_path, "webdataset")
    path = shards / "pretrain-001.tar"
    path.write_bytes(path.read_bytes()[:-512])
    with pytest.raises(ShardError, match="pretrain-001.tar has .* bytes, the index .* says"):
        SegmentStore.open(shards)


def test_a_shard_the_index_lists_is_missing(tmp_path):
    shards = write_indexed(tmp_path, "webdataset")
    (shards / "pretrain-002.tar").unlink()
    with pytest.raises(FileNotFoundError, match="pretrain-002.tar is missing"):
        SegmentStore.open(shards)


def test_a_shard_the_index_does_not_list_is_refused(tmp_path):
    shards = write_indexed(tmp_path, "webdataset")
    (shards / "pretrain-003.tar").write_bytes((shards / "pretrain-002.tar").read_bytes())
    with pytest.raises(ShardError, match="pretrain-003.tar is not in the index"):
        SegmentStore.open(shards)


def test_a_url_without_an_index_says_to_curate_again(in_memory):
    fsspec.filesystem("memory").rm(fsspec.core.url_to_fs(in_memory)[1] + "/pretrain-index.json")
    with pytest.raises(FileNotFoundError, match="pretrain-index.json included"):
        SegmentStore.open(in_memory)


def test_a_missing_or_cut_shard_at_a_url_is_named(in_memory):
    memory, root = fsspec.core.url_to_fs(in_memory)
    data = memory.cat_file(f"{root}/pretrain-001.tar")
    memory.pipe(f"{root}/pretrain-001.tar", data[:-512])
    with pytest.raises(ShardError, match=f"{in_memory}/pretrain-001.tar has .* bytes"):
        SegmentStore.open(in_memory)
    memory.rm(f"{root}/pretrain-001.tar")
    with pytest.raises(FileNotFoundError, match=in_memory):
        SegmentStore.open(in_memory)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/shards", "nosuchprotocol://bucket/shards"])
def test_an_unreachable_url_is_named(url):
    with pytest.raises(ShardError, match=f"cannot read shards at {url}"):
        SegmentStore.open(url)


def test_shards_tracked_by_dvc_are_read_from_its_remote(tmp_path, monkeypatch):
    """dvc:// reads the shards a DVC repository tracks straight from its remote: here a local
    remote, with neither the workspace copy nor the cache left."""
    monkeypatch.chdir(tmp_path)
    repo = Repo.init(no_scm=True)
    with repo.config.edit() as config:
        config["remote"]["store"] = {"url": str(tmp_path / "store")}
        config["core"]["remote"] = "store"
    write_indexed(tmp_path / "shards", "webdataset")
    repo = Repo()
    repo.add("shards")
    repo.push()
    shutil.rmtree(tmp_path / "shards")
    shutil.rmtree(tmp_path / ".dvc" / "cache")
    store = SegmentStore.open("dvc://shards")
    assert all(np.array_equal(store[index], segment) for index, segment in enumerate(SEGMENTS))
    assert not (tmp_path / "shards").exists()
