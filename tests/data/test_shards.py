"""The shard formats: WebDataset tar shards are what WebDataset and `tar` read, both formats give
`load_split` the same arrays, and the index says where every segment's video lies."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import yaml

from fourds.atomic import file_digest
from fourds.config.schema import SHARD_FORMATS, ConfigError, CurateConfig, parse
from fourds.data.shards import (
    FORMATS,
    ShardError,
    ShardIndex,
    ShardWriter,
    load_split,
    shard_paths,
    write_index,
)
from fourds.data.shards.spec import shard_name
from tests.conftest import REPO_ROOT

ROWS = [
    {
        "video": np.random.default_rng(index).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8),
        "depth": np.full((5, 8, 8), index, np.float16),
        "label": np.array(f"class{index}"),
    }
    for index in range(5)
]


def write_rows(shard_dir, fmt: str, per_shard: int = 2) -> None:
    """ROWS as pretrain shards of `per_shard` rows (3 shards: 2, 2, 1) and their index."""
    writer = ShardWriter(shard_dir, "pretrain", per_shard, fmt)
    for number, row in enumerate(ROWS):
        writer.add(row, {"row": number, "source": f"video{number}.mp4"})
    writer.flush()
    write_index(shard_dir, "pretrain")


@pytest.fixture
def tar_shards(tmp_path):
    write_rows(tmp_path, "webdataset")
    return tmp_path


def test_the_config_names_every_format():
    assert tuple(FORMATS) == SHARD_FORMATS


def test_a_tar_shard_is_a_plain_tar_of_aligned_samples(tar_shards):
    paths = shard_paths(tar_shards, "pretrain")
    assert [path.name for path in paths] == [
        "pretrain-000.tar",
        "pretrain-001.tar",
        "pretrain-002.tar",
    ]
    with tarfile.open(paths[0]) as archive:
        members = archive.getmembers()
        names = [member.name for member in members]
        assert names == [
            f"pretrain-000-{row:06d}.{kind}"
            for row in range(2)
            for kind in ("video.npy", "depth.npy", "label.npy", "json")
        ]
        for member in members:
            assert member.isfile() and member.offset_data % 512 == 0
            assert member.mtime == 0 and member.uid == 0 and member.mode == 0o644
        video = archive.extractfile(names[0]).read()
        assert members[0].size == len(video)
        assert np.array_equal(np.load(io.BytesIO(video)), ROWS[0]["video"])
        assert json.load(archive.extractfile(names[3])) == {"row": 0, "source": "video0.mp4"}


def test_webdataset_iterates_the_shards_as_samples(tar_shards):
    webdataset = pytest.importorskip("webdataset")
    urls = [str(path) for path in shard_paths(tar_shards, "pretrain")]
    samples = list(webdataset.WebDataset(urls, shardshuffle=False).decode())
    assert [sample["__key__"] for sample in samples] == [
        "pretrain-000-000000", "pretrain-000-000001", "pretrain-001-000000",
        "pretrain-001-000001", "pretrain-002-000000",
    ]  # fmt: skip
    for sample, row in zip(samples, ROWS, strict=True):
        assert np.array_equal(sample["video.npy"], row["video"])
        assert np.array_equal(sample["depth.npy"], row["depth"])
        assert sample["label.npy"] == row["label"]
    assert samples[4]["json"] == {"row": 4, "source": "video4.mp4"}


def test_both_formats_load_the_same_split(tmp_path):
    write_rows(tmp_path / "npz", "npz")
    write_rows(tmp_path / "tar", "webdataset")
    for keys in (None, ("video",), ("depth", "label")):
        from_npz, from_tar = (
            load_split(tmp_path / fmt, "pretrain", keys) for fmt in ("npz", "tar")
        )
        assert from_npz.keys() == from_tar.keys()
        for key, array in from_npz.items():
            assert array.dtype == from_tar[key].dtype and np.array_equal(array, from_tar[key])
    with pytest.raises(KeyError, match="has no \\['flow'\\]"):
        load_split(tmp_path / "tar", "pretrain", ("video", "flow"))


def test_the_same_rows_give_the_same_tar_bytes(tmp_path):
    write_rows(tmp_path / "a", "webdataset")
    write_rows(tmp_path / "b", "webdataset")
    for name in ("pretrain-000.tar", "pretrain-002.tar", "pretrain-index.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize("fmt", SHARD_FORMATS)
def test_the_index_gives_each_shards_digest_and_each_segments_bytes(tmp_path, fmt):
    write_rows(tmp_path, fmt)
    raw = (tmp_path / "pretrain-index.json").read_text()
    index = ShardIndex.from_json(raw, "pretrain-index.json")
    assert (index.split, index.format) == ("pretrain", fmt)
    assert index.shape == (5, 8, 8, 3) and np.dtype(index.dtype) == np.uint8
    paths = shard_paths(tmp_path, "pretrain")
    assert [shard.name for shard in index.shards] == [path.name for path in paths]
    rows = iter(ROWS)
    for shard, path in zip(index.shards, paths, strict=True):
        assert shard.bytes == path.stat().st_size and shard.sha256 == file_digest(path)
        data = path.read_bytes()
        for offset, length in shard.segments:
            assert data[offset : offset + length] == next(rows)["video"].tobytes()
    assert next(rows, None) is None


def test_shards_of_two_formats_in_one_folder_are_refused(tmp_path):
    write_rows(tmp_path, "npz")
    ShardWriter(tmp_path, "pretrain", 1, "webdataset").add(ROWS[0])  # pretrain-000.tar
    with pytest.raises(ShardError, match="two formats"):
        write_index(tmp_path, "pretrain")


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_a_truncated_tar_shard_is_named(tar_shards, keep):
    """Cut within the samples (a tar ends in zero padding that holds nothing)."""
    path = tar_shards / "pretrain-001.tar"
    with tarfile.open(path) as archive:
        end = max(member.offset_data + member.size for member in archive)
    path.write_bytes(path.read_bytes()[: int(end * keep)])
    with pytest.raises(ShardError, match="pretrain-001.tar"):
        write_index(tar_shards, "pretrain")


def test_an_index_that_is_not_one_is_refused():
    with pytest.raises(ShardError, match="pretrain-index.json is not a readable shard index"):
        ShardIndex.from_json('{"split": "pretrain"', "pretrain-index.json")
    with pytest.raises(ShardError, match="segment lengths do not match"):
        ShardIndex.from_json(
            json.dumps(
                {
                    "split": "pretrain", "format": "npz", "shape": [2, 2], "dtype": "|u1",
                    "shards": [{"name": "a", "bytes": 9, "sha256": "", "segments": [[0, 5]],
                                "segment_sha256": [""]}],
                }
            ),
            "pretrain-index.json",
        )  # fmt: skip


def test_an_unknown_format_is_refused_by_its_key():
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["curate"]
    assert parse(CurateConfig, raw, "curate").pretrain_format == "npz"
    with pytest.raises(ConfigError, match=r"curate.pretrain_format='zip' is not one of \["):
        parse(CurateConfig, {**raw, "pretrain_format": "zip"}, "curate")


def test_shards_are_listed_in_the_order_of_their_numbers_past_999(tmp_path):
    for number in (1000, 2, 999, 1001):
        (tmp_path / shard_name("pretrain", number, "webdataset")).touch()
    (tmp_path / "pretrain-index.json").touch()
    names = [path.name for path in shard_paths(tmp_path, "pretrain")]
    assert names == [
        "pretrain-002.tar",
        "pretrain-999.tar",
        "pretrain-1000.tar",
        "pretrain-1001.tar",
    ]
