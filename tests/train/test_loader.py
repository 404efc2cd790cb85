"""The pretraining loader: every example is a pure function of (seed, step, slot)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools

import fsspec
import numpy as np
import pytest
import torch
import yaml

from fourds.atomic import file_digest
from fourds.cli import main
from fourds.config import load_params
from fourds.config.schema import SHARD_FORMATS
from fourds.data.augment import ClipSampler, crop_resize_flip
from fourds.data.segments import SegmentStore
from fourds.data.shards import ShardWriter, write_index
from fourds.models.factory import scale_mae
from fourds.train.loader import ClipExample, Slot, collate, on_compute_stream, pretrain_loader
from fourds.train.pretrain import run_fingerprint
from tests.conftest import REPO_ROOT
from tests.train.conftest import pretrain_command, write_tiny_params

SEGMENTS = np.random.default_rng(0).integers(0, 256, (5, 12, 16, 16, 3), dtype=np.uint8)


def sample_masks(batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep 4 of 8 tokens at random: keep_index [batch, 4], mask bool [batch, 8]."""
    keep_index = torch.rand(batch, 8, generator=generator).argsort(1)[:, :4]
    mask = torch.ones(batch, 8, dtype=torch.bool).scatter(1, keep_index, False)
    return keep_index, mask


def example(seed: int = 0, crop_scale: tuple[float, float] = (0.5, 1.0)) -> ClipExample:
    sampler = ClipSampler(4, 2, crop_scale, (0.75, 1.333))
    return ClipExample(SEGMENTS, sampler, seed, sample_masks)


def clip(example: dict[str, torch.Tensor]) -> torch.Tensor:
    """An example's clip, uint8 [T, S, S, 3]: its window with its view applied, as in training."""
    return crop_resize_flip(example["video"][None], example["view"][None])[0]


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_an_example_is_a_function_of_seed_step_and_slot():
    first = example()(Slot(3, 1))
    assert first["video"].dtype == torch.uint8 and first["video"].shape == (4, 16, 16, 3)
    assert first["view"].shape == (5,)
    assert first["keep_index"].shape == (4,) and first["mask"].shape == (8,)
    assert same(first, example()(Slot(3, 1)))  # a fresh sampler: nothing carried over
    others = [example()(Slot(3, 0)), example()(Slot(4, 1)), example(seed=1)(Slot(3, 1))]
    assert not any(torch.equal(clip(first), clip(other)) for other in others)
    assert not any(torch.equal(first["keep_index"], other["keep_index"]) for other in others)


def test_the_slots_of_a_batch_get_different_clips():
    videos = [clip(example()(Slot(0, row))) for row in range(8)]
    assert not any(torch.equal(a, b) for a, b in itertools.combinations(videos, 2))


def test_without_crops_every_video_is_a_plain_window_of_a_segment():
    for row in range(16):
        video = clip(example(crop_scale=(1.0, 1.0))(Slot(0, row))).numpy()
        plain = [
            window
            for segment in SEGMENTS
            for start in range(6)
            for window in (segment[start : start + 7 : 2], segment[start : start + 7 : 2, :, ::-1])
        ]
        assert any(np.array_equal(video, window) for window in plain), row


def test_the_loader_yields_the_examples_of_its_slots_in_order():
    make = example()
    loader = pretrain_loader(make, steps=3, rows=range(2, 4), workers=2, prefetch=2)
    batches = list(loader)
    assert len(batches) == 3
    for step, batch in enumerate(batches):
        expected = collate([make(Slot(step, row)) for row in (2, 3)])
        assert same(batch, expected), step


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batches_for_a_gpu_arrive_on_it_with_the_same_values():
    make = example()
    device = torch.device("cuda")
    loader = pretrain_loader(make, steps=2, rows=range(4), workers=1, prefetch=1, device=device)
    for step, batch in enumerate(loader):
        batch = on_compute_stream(batch)
        assert all(value.is_cuda for value in batch.values())
        host = {key: value.cpu() for key, value in batch.items()}
        assert same(host, collate([make(Slot(step, row)) for row in range(4)]))


def test_pretraining_refuses_segments_shorter_than_its_window(tiny_shards, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    write_tiny_params(params, frame_stride=4)  # a window of 4 frames spans 13 > 12
    raw = params.read_text().replace("pretrain_frames: 12", "pretrain_frames: 16")
    params.write_text(raw)
    assert main(pretrain_command([], params, tiny_shards, tmp_path / "run")) == 2
    error = capsys.readouterr().err
    assert "hold 12-frame segments" in error and "needs 13" in error


# sha256 of (clip, keep_index, mask) of the examples of steps 0-2, rows 0-15, made with
# params.yaml's clip sampling and cpu_s masks from EMBEDDED_SEGMENTS, computed with the
# in-memory numpy loader before the segments were memory-mapped and before crops moved to the
# device: the embedded study's batches.
EMBEDDED_DIGEST = "6c4aab1ffb8b023ca742c61110c121663b09f2e888cc44699bd479233c272fdf"


def embedded_examples(segments) -> ClipExample:
    """ClipExample as the pretrain stage builds it for params.yaml's cpu_s over `segments`."""
    params = load_params(REPO_ROOT / "params.yaml")
    cfg = params.pretrain
    sampler = ClipSampler(
        params.curate.clip_frames, cfg.frame_stride, cfg.crop_scale, cfg.crop_aspect
    )
    return ClipExample(
        segments, sampler, cfg.seed, scale_mae(params.pretraining("cpu_s")).sample_masks
    )


def examples_digest(make: ClipExample, steps: int, rows: int) -> str:
    digest = hashlib.sha256()
    for step, row in itertools.product(range(steps), range(rows)):
        example = make(Slot(step, row))
        digest.update(clip(example).numpy().tobytes())
        for key in ("keep_index", "mask"):
            digest.update(example[key].numpy().tobytes())
    return digest.hexdigest()


def test_mapped_segments_give_the_embedded_study_its_batches_bit_for_bit(tmp_path):
    params = load_params(REPO_ROOT / "params.yaml")
    frames, size = params.curate.pretrain_frames, params.curate.resolution
    segments = np.random.default_rng(0).integers(0, 256, (6, frames, size, size, 3), np.uint8)
    writer = ShardWriter(tmp_path, "pretrain", per_shard=4)  # two shards: 4 and 2 segments
    for segment in segments:
        writer.add({"video": segment})
    writer.flush()
    in_memory, mapped = embedded_examples(segments), embedded_examples(SegmentStore.open(tmp_path))
    batch = params.pretrain.batch_size
    assert examples_digest(in_memory, 3, batch) == EMBEDDED_DIGEST
    assert examples_digest(mapped, 3, batch) == EMBEDDED_DIGEST
    loaders = [pretrain_loader(make, 3, range(batch), 2, 2) for make in (in_memory, mapped)]
    for expected, actual in zip(*loaders, strict=True):
        assert same(expected, actual)


def test_a_window_of_a_mapped_segment_is_a_writable_copy(tmp_path):
    writer = ShardWriter(tmp_path, "pretrain", per_shard=8)
    for segment in SEGMENTS:
        writer.add({"video": segment})
    writer.flush()
    store = SegmentStore.open(tmp_path)
    sampler = ClipSampler(12, 1, (1.0, 1.0), (1.0, 1.0))  # the whole segment
    for seed in range(8):
        window, _ = sampler(store[0], np.random.default_rng(seed))
        assert np.array_equal(window.numpy(), SEGMENTS[0])
        window[0, 0, 0, 0] ^= 1  # writable, and the mapped segment is untouched
    assert np.array_equal(store[0], SEGMENTS[0])


def test_every_shard_format_and_source_gives_the_embedded_study_its_batches(tmp_path):
    """npz shards and WebDataset tar shards, mapped from a folder or fetched from a URL (an
    in-memory fsspec filesystem standing in for an object store), through their index."""
    params = load_params(REPO_ROOT / "params.yaml")
    frames, size = params.curate.pretrain_frames, params.curate.resolution
    segments = np.random.default_rng(0).integers(0, 256, (6, frames, size, size, 3), np.uint8)
    for fmt in SHARD_FORMATS:
        writer = ShardWriter(tmp_path / fmt, "pretrain", 4, fmt)  # two shards: 4 and 2 segments
        for segment in segments:
            writer.add({"video": segment})
        writer.flush()
        write_index(tmp_path / fmt, "pretrain")
    memory = fsspec.filesystem("memory")
    url = f"memory://{tmp_path.name}/shards"
    for path in (tmp_path / "webdataset").iterdir():
        memory.pipe(f"/{tmp_path.name}/shards/{path.name}", path.read_bytes())
    try:
        sources = [tmp_path / "npz", tmp_path / "webdataset", url]
        makes = [embedded_examples(SegmentStore.open(source)) for source in sources]
        batch = params.pretrain.batch_size
        assert examples_digest(makes[2], 3, batch) == EMBEDDED_DIGEST
        loaders = [pretrain_loader(make, 3, range(batch), 2, 2) for make in makes]
        for step, batches in enumerate(zip(*loaders, strict=True)):
            assert all(same(batches[0], other) for other in batches[1:]), step
    finally:
        memory.rm(f"/{tmp_path.name}", recursive=True)


def test_pretraining_reads_its_shards_from_pretrain_shards_url(tiny_shards, tmp_path):
    """The run record lists the shards at the URL with curate's digests (from the index)."""
    memory = fsspec.filesystem("memory")
    url = f"memory://{tmp_path.name}/shards"
    for path in tiny_shards.glob("pretrain-*"):
        memory.pipe(f"/{tmp_path.name}/shards/{path.name}", path.read_bytes())
    params = write_tiny_params(tmp_path / "params.yaml", steps=2, warmup_steps=1, shards_url=url)
    try:
        command = pretrain_command([], params, tmp_path / "no-local-shards", tmp_path / "run")
        assert main(command) == 0
    finally:
        memory.rm(f"/{tmp_path.name}", recursive=True)
    record = yaml.safe_load((tmp_path / "run" / "run.yaml").read_text())
    shards = {path.name: file_digest(path) for path in tiny_shards.glob("pretrain-*.npz")}
    assert record["inputs"] == {f"{url}/{name}": digest for name, digest in shards.items()}


def test_where_the_shards_are_read_from_does_not_change_the_run_fingerprint():
    params = load_params(REPO_ROOT / "params.yaml")
    remote = dataclasses.replace(params.pretrain, shards_url="s3://bucket/shards")
    moved = dataclasses.replace(params, pretrain=remote)
    assert run_fingerprint(moved.pretraining("cpu_s"), ["sha"]) == run_fingerprint(
        params.pretraining("cpu_s"), ["sha"]
    )
