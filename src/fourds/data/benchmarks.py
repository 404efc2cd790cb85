"""Readout data from a task's `source` param (fourds.config.SourceConfig): the curated synthetic
shards, or public benchmark files read by their format's reader (fourds.config.formats names it,
fourds.data.readers holds them) and cut into clips.

Benchmark layouts, the same for `train` and `test`:

    tapvid          a TAP-Vid pickle (fourds.data.readers.tapvid), or a folder of them read in
                    name order (TAP-Vid-Kinetics: tapvid_kinetics/ of NNNN_of_0010.pkl)
    scannet         a folder whose sub-folders are exported scenes (fourds.data.readers.scannet)
    realestate10k   a folder of camera files <clip>.txt (fourds.data.readers.realestate10k), each
                    beside its video <clip>.<ext> in any container PyAV decodes; camera line i
                    shows the video frame at its timestamp, frame round(timestamp * fps)
    box_tracks      a folder of box-track files <clip>.json or <clip>.csv
                    (fourds.data.readers.boxes), each beside its video <clip>.<ext>; boxes are in
                    pixels of the video as displayed, frame i its i-th decoded frame
    perception_test a Perception Test annotation file (all_train.json, all_valid.json) whose
                    entries with point tracks name videos <video_id>.mp4 under `source.videos`
                    (fourds.data.readers.perception_test)
    waymo_open      a split folder of the Waymo Open v2 release (training/, validation/) with
                    its camera_image/ and camera_box/ parquet files, one per segment
                    (fourds.data.readers.waymo): the FRONT camera's frames and box tracks
    ssv2, kinetics  split files that list videos of `source.videos` by name, each with its
                    class (fourds.data.labelled): one centred, centre-cropped clip per video,
                    labelled with its class; the rest of this docstring is for the others

Every benchmark video is stretched to size x size (TAP-Vid's own convention for its 256 x 256
metrics) with its ground truth, then cut into non-overlapping clips of `frames` frames taking
every `frame_stride`-th frame, as curation cuts the synthetic videos. A clip keeps the points
visible in at least one of its frames and every object; since their counts differ from clip to
clip, each split is padded to its largest count with never-visible entries, which no metric
scores. Splits come out as `fourds.data.shards.load_split` returns the synthetic ones.

Memory: benchmark files are read and cut one video at a time, and a split's arrays past the
budget given (`readout.max_host_mib`) are written to the stage's scratch folder and handed back
memory-mapped (fourds.data.spill), so a split of any size is read in bounded memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from fourds.config import SourceConfig
from fourds.config.formats import FORMATS, SYNTHETIC, where_to_get
from fourds.data.curate import clip_starts, resize_ground_truth
from fourds.data.labelled import benchmark_classes, labelled_files, labelled_samples
from fourds.data.readers import ReaderError, format_reader
from fourds.data.sample import Sample
from fourds.data.shards import OPTIONAL_PER_CLIP, PER_CLIP, PER_TRACK, load_split
from fourds.data.spill import IN_MEMORY, HostBudget, StackBuilder
from fourds.data.video import frames_from_pixels, resize_frames

GROUND_TRUTH = ("depth", "intrinsics", "extrinsics", "tracks", "visible", "boxes", "box_visible")


def load_readout_split(
    source: SourceConfig,
    split: str,
    shard_dir: str | Path,
    keys: tuple[str, ...],
    frames: int,
    size: int,
    budget: HostBudget = IN_MEMORY,
) -> dict[str, np.ndarray]:
    """The "train" or "test" clips of a readout's source: arrays `keys` (with "video") as
    `load_split` gives them, N clips of `frames` x `size` x `size`; a benchmark's arrays past
    `budget` memory-mapped from its folder (the same values).

    Raises:
        ReaderError: a benchmark file lacks the ground truth asked for, or yields no clip.
    """
    if source.format == SYNTHETIC:
        return load_split(shard_dir, f"readout-{split}", keys)
    if FORMATS[source.format].lists_videos:  # samples that are clips already
        samples = labelled_samples(source, split, frames, size)
        return clips_from_samples(samples, keys, frames, size, 1, budget)
    samples = iter_benchmark(source.format, getattr(source, split), size, source.videos)
    return clips_from_samples(samples, keys, frames, size, source.frame_stride, budget)


def readout_classes(source: SourceConfig) -> tuple[str, ...]:
    """A classification benchmark's class list, in the order of the readout's outputs; empty
    where the classes are the labels found in the clips (the synthetic corpus)."""
    entry = FORMATS.get(source.format)
    return benchmark_classes(source) if entry and entry.lists_videos else ()


def pretrain_clips(
    shard_dir: str | Path, keys: tuple[str, ...], count: int, frames: int, frame_stride: int
) -> dict[str, np.ndarray] | None:
    """Up to `count` readout clips cut from the curated pretraining segments, with their ground
    truth: arrays `keys` (with "video") as `load_split` gives the readout splits, clips of
    `frames` frames, every `frame_stride`-th one, from non-overlapping spans of each segment
    (as curation cuts the readout videos). Deterministic: every segment's first clip in shard
    order, then every segment's second clip, and so on, the first `count` of them (so a small
    `count` still spans as many videos as it can); fewer when the segments hold fewer.

    None when there are none: no pretraining shards, shards without the ground truth `keys`
    (videos without sidecars), or segments shorter than one clip.
    """
    try:
        segments = load_split(shard_dir, "pretrain", keys)
    except (FileNotFoundError, KeyError):
        return None
    span = frames * frame_stride
    starts = clip_starts(segments["video"].shape[1], span)
    if not starts or count == 0:
        return None
    clips = {}
    for key in keys:
        array = segments[key]
        if key in PER_CLIP or key in OPTIONAL_PER_CLIP:
            cut = [array for _ in starts]
        else:
            axis = 2 if key in PER_TRACK else 1  # video and per-frame truth: [N, T, ...]
            cut = [array.take(range(s, s + span, frame_stride), axis=axis) for s in starts]
        clips[key] = np.concatenate(cut)[:count]
    return clips


def source_files(source: SourceConfig, shard_dir: str | Path) -> list[Path]:
    """Every file a readout's data is read from (for its run record)."""
    if source.format == SYNTHETIC:
        return sorted(Path(shard_dir).glob("readout-*.npz"))
    if FORMATS[source.format].lists_videos:
        return labelled_files(source)
    files = []
    for root in (Path(source.train), Path(source.test)):
        if not root.exists():
            raise FileNotFoundError(missing_benchmark(root, source.format))
        files += format_reader(source.format).files(root, source.videos)
    return files


def read_benchmark(format: str, path: str | Path, size: int, videos: str = "") -> list[Sample]:
    """The Samples of benchmark `path` in `format` (see the module docstring for layouts)."""
    return list(iter_benchmark(format, path, size, videos))


def iter_benchmark(format: str, path: str | Path, size: int, videos: str = "") -> Iterator[Sample]:
    """The Samples of benchmark `path` in `format` (with its videos under `videos` where the
    format names them), read file by file as the iterator reaches them (a TAP-Vid pickle's
    videos together). A missing path raises at once, saying where to get the data (the
    format's reader says it where the format's entry leaves `where` to it)."""
    entry = FORMATS.get(format)
    if entry is None or entry.lists_videos:
        raise ValueError(f"{format!r} is not a benchmark format of video-length samples")
    path = Path(path)
    if entry.where and not path.exists():
        raise FileNotFoundError(missing_benchmark(path, format))
    return format_reader(format).samples(path, size, videos)


def missing_benchmark(path: Path, format: str) -> str:
    """The error for a benchmark path that does not exist: what it is and where to get it."""
    return f"{path}: no such {format} benchmark file or folder; {where_to_get(format)}"


def resize_sample(sample: Sample, size: int) -> Sample:
    """The sample with its video stretched to size x size and its ground truth with it."""
    height, width = sample.video.shape[1:3]
    if (height, width) == (size, size):
        return sample
    truth = {key: getattr(sample, key) for key in GROUND_TRUTH if getattr(sample, key) is not None}
    resized = resize_ground_truth(truth, (height, width), size)
    video = resize_frames(frames_from_pixels(sample.video), len(sample.video), size)
    return dataclasses.replace(sample, video=video, **resized)


def clips_from_samples(
    samples: Iterable[Sample],
    keys: tuple[str, ...],
    frames: int,
    size: int,
    frame_stride: int,
    budget: HostBudget = IN_MEMORY,
) -> dict[str, np.ndarray]:
    """Cut samples into clips: arrays `keys` [N, ...] (see the module docstring), each sample
    cut and let go before the next is read; an array past `budget` is memory-mapped from a file
    of its folder (fourds.data.spill.StackBuilder)."""
    span = (frames - 1) * frame_stride + 1
    stacks = {key: StackBuilder(budget, key, padded=key in PER_TRACK) for key in keys}
    names, count = [], 0
    for sample in samples:
        missing = [key for key in keys if getattr(sample, key, None) is None]
        if missing:
            raise ReaderError(f"{sample.name} has no {missing} ground truth")
        if len(names) < 3:  # for the message when no video is long enough
            names.append(sample.name)
        sample = resize_sample(sample, size)
        for start in clip_starts(len(sample.video), span):
            clip = _clip(sample, keys, np.arange(start, start + span, frame_stride))
            for key in keys:
                stacks[key].add(clip[key])
            count += 1
    if not count:
        raise ReaderError(f"no video of {', '.join(names)}... has the {span} frames a clip needs")
    return {key: stack.result() for key, stack in stacks.items()}


def _clip(sample: Sample, keys: tuple[str, ...], index: np.ndarray) -> dict[str, np.ndarray]:
    clip = {}
    for key in keys:
        value = getattr(sample, key)
        if key in PER_CLIP:
            clip[key] = np.asarray(value)
        else:
            clip[key] = value[:, index] if key in PER_TRACK else value[index]
    if "visible" in clip:  # keep the points seen in this clip
        seen = clip["visible"].any(axis=1)
        clip["tracks"], clip["visible"] = clip["tracks"][seen], clip["visible"][seen]
    return clip
