"""The lineage table: what produced each number in the report, from the stages' run records.

Every stage writes `run.yaml` beside its outputs (fourds.records.write_run_record): git commit,
sha256 of params.yaml, sha256 of every input file, package versions, device. One row per stage
condenses it: the inputs' digests are folded into one "data" digest (sha256 over the sorted
"path digest" lines), so two rows with the same data digest read exactly the same bytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

SHOWN_PACKAGES = ("fourds", "torch", "dvc")


def stage_dirs(
    runs_root: str | Path, scales: list[str], tasks: list[str], regimes: list[str]
) -> list[Path]:
    """The output folders of every stage the report shows: curate, then per scale pretrain and
    fidelity, then every readout (<scale>-<task>-<regime>)."""
    runs = Path(runs_root)
    stages = [runs / "curate"]
    stages += [runs / kind / scale for kind in ("pretrain", "fidelity") for scale in scales]
    stages += [
        runs / "readout" / f"{scale}-{task}-{regime}"
        for scale in scales
        for task in tasks
        for regime in regimes
    ]
    return stages


def inputs_digest(inputs: dict[str, str]) -> str:
    """sha256 over the sorted 'path digest' lines of a run record's inputs."""
    lines = "".join(f"{path} {digest}\n" for path, digest in sorted(inputs.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def lineage_row(stage_dir: str | Path) -> dict[str, str]:
    """The lineage of one stage's outputs, from `stage_dir/run.yaml`.

    Raises:
        FileNotFoundError: the stage wrote no run record (it did not finish).
    """
    path = Path(stage_dir) / "run.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no run record; run the stage first (`dvc repro`)")
    record = yaml.safe_load(path.read_text())
    packages = record.get("packages", {})
    return {
        "stage": record["stage"],
        "git commit": (record.get("git_commit") or "not a git checkout")[:10],
        "params sha256": record["params_sha256"][:12],
        "data sha256": inputs_digest(record["inputs"])[:12],
        "inputs": str(len(record["inputs"])),
        "packages": ", ".join(
            f"{name} {packages[name]}" for name in SHOWN_PACKAGES if name in packages
        ),
        "device": record["device"],
        "finished": record["finished_at"],
    }


def corpus_digest(data_dvc: str | Path) -> str:
    """The DVC hash of the embedded corpus (data.dvc's md5 of the data/ folder)."""
    record = yaml.safe_load(Path(data_dvc).read_text())
    return record["outs"][0]["md5"]
