"""The readout source formats, one entry each: what every part of fourds says about a format.

`readouts.<task>.source.format` is "synthetic" (the curated corpus's readout shards) or a key
of FORMATS, a public benchmark's files. An entry names the module that reads the format, the
tasks whose ground truth it carries, where to get the data (for the error a missing file
raises), and how it finds its videos:

    lists_videos   its split files name videos of `source.videos`, each one labelled clip
                   (fourds.data.labelled); its reader exports VIDEO_SUFFIX, class_file(train),
                   classes(path) and split(path) -> [LabelledVideo];
    otherwise      its reader exports samples(path, size, videos) -> Iterator[Sample] (a split
                   of video-length samples, cut into clips by fourds.data.benchmarks) and
                   files(path, videos) -> [Path] (what the readout's run record hashes);
    reads_videos   it needs `source.videos`, the folder of its videos;
    challenge      a module that also scores the test split as the benchmark's challenge does:
                   it exports challenge_task(task, source) -> the task, scoring both ways.

Params validation (SourceConfig.check, fourds.config.load.check_readout_params), the readout
stage's data (fourds.data.benchmarks) and the missing-file errors read this table; adding a
format is an entry here and its reader module. No imports beyond the standard library: params
import it.
"""

from __future__ import annotations

import dataclasses

SYNTHETIC = "synthetic"  # the curated corpus: every task's ground truth, no files to name
BENCHMARK_PAGE = "docs/benchmarks.md"  # each format's layout, download and terms


@dataclasses.dataclass(frozen=True)
class SourceFormat:
    """One benchmark format (module docstring)."""

    reader: str  # the module that reads it
    tasks: tuple[str, ...]  # the tasks whose ground truth it carries
    where: str = ""  # where to get it; "" where the reader's own errors say, with the terms
    lists_videos: bool = False
    reads_videos: bool = False
    challenge: str = ""  # the module of the challenge's own scoring; "" where fourds' only


FORMATS: dict[str, SourceFormat] = {
    "scannet": SourceFormat(
        "fourds.data.readers.scannet",
        ("depth", "pose"),
        "ScanNet, after agreeing to its Terms of Use (http://www.scan-net.org/), exported with "
        "its SensReader into <scene>/{color,depth,pose,intrinsic}",
    ),
    "realestate10k": SourceFormat(
        "fourds.data.readers.realestate10k",
        ("pose",),
        "RealEstate10K's camera files (https://google.github.io/realestate10k/), each beside "
        "its video",
    ),
    "tapvid": SourceFormat(
        "fourds.data.readers.tapvid",
        ("tracking",),
        "the TAP-Vid pickles (https://storage.googleapis.com/dm-tapnet/tapvid_davis.zip, "
        "tapvid_rgb_stacking.zip)",
    ),
    "perception_test": SourceFormat(
        "fourds.data.readers.perception_test",
        ("tracking",),
        reads_videos=True,
        challenge="fourds.evaluate.perception_test",
    ),
    "box_tracks": SourceFormat(
        "fourds.data.readers.boxes",
        ("boxes",),
        "box tracks in fourds' JSON or CSV form, each beside its video",
    ),
    "waymo_open": SourceFormat("fourds.data.readers.waymo", ("boxes",)),
    "ssv2": SourceFormat(
        "fourds.data.readers.ssv2",
        ("classification",),
        "Something-Something v2 from Qualcomm's developer site, after agreeing to its licence",
        lists_videos=True,
        reads_videos=True,
    ),
    "kinetics": SourceFormat(
        "fourds.data.readers.kinetics",
        ("classification",),
        "Kinetics from the CVDF mirror (https://github.com/cvdfoundation/kinetics-dataset)",
        lists_videos=True,
        reads_videos=True,
    ),
}


def source_formats() -> tuple[str, ...]:
    """Every readout source format: "synthetic", then the benchmarks in table order."""
    return (SYNTHETIC, *FORMATS)


def formats_of(task: str) -> tuple[str, ...]:
    """The source formats that carry `task`'s ground truth: "synthetic" (the corpus carries
    every task's) and the benchmarks that name it."""
    return (SYNTHETIC, *(name for name, entry in FORMATS.items() if task in entry.tasks))


def where_to_get(format: str) -> str:
    """'get <where>; see docs/benchmarks.md', for a benchmark format's missing-file error."""
    entry = FORMATS.get(format)
    where = entry.where if entry else ""
    return f"get {where}; see {BENCHMARK_PAGE}" if where else f"see {BENCHMARK_PAGE}"
