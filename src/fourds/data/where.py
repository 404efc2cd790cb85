"""Where to get each benchmark fourds reads, for the error a missing file raises.

The publishers' pages, as docs/benchmarks.md lists them with their terms and layouts; fourds
downloads nothing itself.
"""

from __future__ import annotations

BENCHMARK_PAGE = "docs/benchmarks.md"

WHERE = {
    "scannet": "ScanNet, after agreeing to its Terms of Use (http://www.scan-net.org/), exported "
    "with its SensReader into <scene>/{color,depth,pose,intrinsic}",
    "realestate10k": "RealEstate10K's camera files (https://google.github.io/realestate10k/), "
    "each beside its video",
    "tapvid": "the TAP-Vid pickles (https://storage.googleapis.com/dm-tapnet/tapvid_davis.zip, "
    "tapvid_rgb_stacking.zip)",
    "box_tracks": "box tracks in fourds' JSON or CSV form, each beside its video",
    "ssv2": "Something-Something v2 from Qualcomm's developer site, after agreeing to its licence",
    "kinetics": "Kinetics from the CVDF mirror (https://github.com/cvdfoundation/kinetics-dataset)",
}


def where_to_get(format: str) -> str:
    """'get it: <where>; see docs/benchmarks.md', for a benchmark format's missing-file error."""
    where = WHERE.get(format)
    return f"get {where}; see {BENCHMARK_PAGE}" if where else f"see {BENCHMARK_PAGE}"
