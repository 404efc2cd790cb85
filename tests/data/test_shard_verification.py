"""What is read is what curate wrote: a bit-flipped or truncated shard is refused with one line
naming the file, by the readers and by every stage that reads shards."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fourds.cli import main
from fourds.data.segments import SegmentStore
from fourds.data.shards import ShardError, ShardIndex, index_name, load_split, shard_paths
from tests.conftest import one_error_line
from tests.train.conftest import pretrain_command, write_tiny_params


def flip_byte(path: Path, offset: int) -> None:
    """Invert the byte at `offset` of the file `path` (its size unchanged)."""
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)[0]
        handle.seek(offset)
        handle.write(bytes([byte ^ 0xFF]))


def segment_spans(shard_dir: Path, split: str) -> list[tuple[Path, int, int]]:
    """(shard file, offset, length) of every indexed segment of `split`."""
    index = ShardIndex.from_json((shard_dir / index_name(split)).read_text(), split)
    return [
        (shard_dir / shard.name, offset, length)
        for shard in index.shards
        for offset, length in shard.segments
    ]


@pytest.fixture
def shards(tiny_shards, tmp_path) -> Path:
    """A copy of the tiny corpus's curated shards, to damage."""
    return Path(shutil.copytree(tiny_shards, tmp_path / "shards"))


def test_a_flipped_byte_in_a_pretrain_segment_is_refused_when_it_is_mapped(shards):
    path, offset, length = segment_spans(shards, "pretrain")[1]
    flip_byte(path, offset + length // 2)
    store = SegmentStore.open(shards)  # the sizes still match the index
    store[0]  # an intact segment reads
    with pytest.raises(ShardError, match=rf"{path} bytes {offset}-{offset + length} differ"):
        store[1]


@pytest.mark.parametrize("damage", ["flipped", "truncated"])
def test_a_damaged_readout_shard_is_refused_by_load_split(shards, damage):
    path = shard_paths(shards, "readout-test")[0]
    if damage == "flipped":
        flip_byte(path, path.stat().st_size // 2)
        says = "sha256 mismatch"
    else:
        with open(path, "r+b") as handle:
            handle.truncate(path.stat().st_size - 100)
        says = "was truncated or replaced"
    with pytest.raises(ShardError, match=rf"{path}.*{says}"):
        load_split(shards, "readout-test", ("video",))


def test_pretraining_on_a_damaged_shard_stops_with_one_line(shards, tmp_path, capsys):
    for path, offset, length in segment_spans(shards, "pretrain"):
        flip_byte(path, offset + length // 2)  # whichever segment is sampled first
    params = write_tiny_params(tmp_path / "params.yaml")  # a loader worker process reads
    command = pretrain_command([], params, shards, tmp_path / "out")
    assert main(command) == 2
    error = one_error_line(capsys.readouterr().err, "pretrain")
    assert "differ from what curate wrote" in error


def test_a_readout_on_a_damaged_shard_stops_with_one_line(shards, tmp_path, capsys):
    flip_byte(shard_paths(shards, "readout-train")[0], 1000)
    params = write_tiny_params(tmp_path / "params.yaml")
    command = ["readout", "--params", str(params), "--scale", "tiny", "--task", "depth"]
    command += ["--regime", "initial", "--curated", str(shards)]
    command += ["--pretrained", str(tmp_path / "none"), "--out", str(tmp_path / "out")]
    assert main(command) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "readout-train-000.npz differs" in error, error
