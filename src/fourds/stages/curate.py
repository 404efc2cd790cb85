"""The `curate` stage: raw videos -> clips in shards, a manifest, clip counts, the run record.

A folder curate.pinned_data pins is checked against its pin first (fourds.data.pin): one whose
content differs is refused before anything is read or written.

Outputs in `out_dir`: shards/ and manifest.json (fourds.data.curate), metrics.json (clips per split,
sources rejected), run.yaml, execution.yaml and operative.gin (fourds.records). Sources are decoded
in curate.workers processes; the outputs do not depend on how many, and the run record's input
hashes are the ones the workers computed (taken from the manifest).
"""

from __future__ import annotations

from pathlib import Path

from fourds.atomic import write_json
from fourds.config import Params
from fourds.config.operative import stage
from fourds.data.curate import curate, manifest_summary
from fourds.data.pin import check_pinned
from fourds.records import write_run_record


@stage
def run(params: Params, data_dir: str | Path, out_dir: str | Path, params_path: str | Path) -> dict:
    """Curate `data_dir` into `out_dir`; returns the metrics written to metrics.json.

    Raises:
        PinError: `data_dir` is pinned (curate.pinned_data) and its content is not the pinned one.
    """
    check_pinned(data_dir, params.curate.pinned_data, Path(params_path).parent)
    manifest = curate(data_dir, out_dir, params.curate)
    metrics = manifest_summary(manifest)
    write_json(Path(out_dir) / "metrics.json", metrics)
    # every source curation could read (the unreadable ones are in the manifest's rejected)
    hashed = {
        entry["source"]: entry["source_sha256"]
        for entry in manifest["clips"] + manifest["rejected"]
        if "source_sha256" in entry
    }
    write_run_record(out_dir, "curate", params_path, list(hashed), "cpu", hashed)
    return metrics
