"""Time to re-render the embedded corpus (`fourds synth`) from its pinned WorldSpec.

Renders every video of the default WorldSpec (or, with --quick, a 3-video corpus of 8 frames)
into a temporary folder with `fourds.data.corpus.write_corpus`: ray casting with 2x2
supersampling, ground truth (depth, instances, cameras, point tracks, boxes), lossless H.264
encoding and the ground-truth files. Target: at most two minutes on this machine.

Run: python benchmarks/render_corpus.py [--quick]
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import harness
import torch

from fourds.data.corpus import WorldSpec, write_corpus

TARGET_SECONDS = 120.0


def main() -> None:
    started = time.perf_counter()
    args = harness.parse_args(__doc__.splitlines()[0])
    spec = WorldSpec()
    if args.quick:
        spec = dataclasses.replace(spec, frames=8, videos={"pretrain": 1, "readout-test": 2})
    root = Path(tempfile.mkdtemp(prefix="fourds-synth-"))
    try:
        begin = time.perf_counter()
        videos = write_corpus(root, spec)
        seconds = time.perf_counter() - begin
        size = sum(path.stat().st_size for path in root.rglob("*") if path.is_file())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results = {
        "videos": len(videos),
        "seconds": round(seconds, 1),
        "seconds_per_video": round(seconds / len(videos), 3),
        "corpus_mib": round(size / harness.MIB, 1),
        "target_seconds": TARGET_SECONDS,
        "target_met": seconds <= TARGET_SECONDS,
    }
    print(f"rendered {len(videos)} videos in {seconds:.1f} s ({size / harness.MIB:.1f} MiB)")
    config = {"world": dataclasses.asdict(spec), "threads": torch.get_num_threads()}
    harness.write_result("render_corpus", args.out, torch.device("cpu"), config, results, started)


if __name__ == "__main__":
    main()
