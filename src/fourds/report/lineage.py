"""The lineage of every number in the report: the DVC stage that produced it, the stage's run
record (`run.yaml`) and its entry in `dvc.lock`.

Every stage writes `run.yaml` beside its outputs (fourds.records.write_run_record: sha256 of
params.yaml and of every input, package versions, device) and `execution.yaml` (when it
finished, at which git commit, how long it took). The report shows and links only the first: DVC
hashes the report, and the second differs from run to run and is no DVC output. DVC records, per
stage in `dvc.lock`, the md5 of every output. The report names each stage in full, links its run
record, and shows the md5 of each output it reads a number from, computed the way DVC 3 computes
it (`hash: md5`: a file's bytes' md5; a folder's, the md5 of its files' listing, ".dir"): while
`dvc status` is clean these are the digests `dvc.lock` holds for the stage, so `grep <digest>
dvc.lock` lands on its entry.

Every number of the report links to its stage's row of the lineage table (`link`, `anchor`).
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
from pathlib import Path

import yaml

from fourds import layout
from fourds.atomic import file_digest

SHOWN_PACKAGES = ("fourds", "torch", "dvc")
LOCK = "dvc.lock"
# The outputs of each kind of stage the report reads numbers from (the report stage depends on
# them in dvc.yaml), in the order the lineage table lists them; a readout's metrics and clips
# are folders, a file per task.
READ = {
    layout.CURATE: ("run.yaml",),
    layout.PRETRAIN: ("metrics.json", "loss.csv", "run.yaml"),
    layout.FIDELITY: ("metrics.json", "run.yaml"),
    layout.READOUT: ("metrics", "clips", "run.yaml"),
}


def stage_dirs(runs_root: str | Path, scales: list[str], regimes: list[str]) -> list[Path]:
    """The output folders of every stage the report shows: curate, then per scale pretrain and
    fidelity, then every readout (<scale>-<regime>)."""
    stages = [layout.curate()]
    stages += [make(scale) for make in (layout.pretrain, layout.fidelity) for scale in scales]
    stages += layout.readouts(scales, regimes)
    return [Path(runs_root) / stage.folder for stage in stages]


def read_files(stage_dir: str | Path) -> list[Path]:
    """The files under `stage_dir` that the report reads (READ, a folder's files in it)."""
    stage_dir = Path(stage_dir)
    kind = stage_name(stage_dir).partition("@")[0]
    paths = [stage_dir / name for name in READ[kind]]
    return [file for path in paths
            for file in (sorted(path.rglob("*")) if path.is_dir() else [path])]  # fmt: skip


def stage_name(stage_dir: str | Path) -> str:
    """The DVC stage that writes `stage_dir` (a folder of `stage_dirs`), as dvc.yaml names it:
    "curate", "pretrain@cpu_s", "readout@cpu_s-frozen"."""
    stage_dir = Path(stage_dir)
    if stage_dir.name == layout.CURATE:
        return layout.curate().name
    return layout.Stage.of_item(stage_dir.parent.name, stage_dir.name).name


def readout_stage(scale: str, regime: str) -> str:
    """The name of the readout stage in dvc.yaml's matrix that reads out every task at
    (scale, regime)."""
    return layout.readout(scale, regime).name


def anchor(stage: str) -> str:
    """The HTML id of `stage`'s row in the lineage table."""
    return "lineage-" + re.sub(r"[^A-Za-z0-9_-]", "-", stage)


def link(text: str, stage: str) -> str:
    """`text` (Markdown allowed) as a link to `stage`'s row in the lineage table."""
    return f'<a href="#{anchor(stage)}">{text}</a>'


def named(stage: str) -> str:
    """The stage's name, in full, as a link to its row in the lineage table."""
    return link(f"`{stage}`", stage)


def dvc_md5(path: str | Path) -> str:
    """The md5 DVC 3 records in dvc.lock for `path` (`hash: md5`): a file's bytes' md5; a
    folder's, the md5 of its files' sorted listing ({"md5", "relpath"} each, as JSON), ".dir"."""
    path = Path(path)
    if not path.is_dir():
        return file_digest(path, "md5")
    listing = [
        {"md5": file_digest(file, "md5"), "relpath": file.relative_to(path).as_posix()}
        for file in sorted(path.rglob("*"), key=lambda file: file.relative_to(path).as_posix())
        if file.is_file()
    ]
    return hashlib.md5(json.dumps(listing, sort_keys=True).encode()).hexdigest() + ".dir"


def read_record(stage_dir: str | Path) -> dict:
    """`stage_dir/run.yaml`.

    Raises:
        FileNotFoundError: the stage wrote no run record (it did not finish).
        ValueError: the record names another stage than the folder's (a folder copied in from
            another run).
    """
    path = Path(stage_dir) / "run.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no run record; run the stage first (`dvc repro`)")
    record = yaml.safe_load(path.read_text())
    if record["stage"] != stage_name(stage_dir):
        raise ValueError(f"{path}: a record of {record['stage']}, not of {stage_name(stage_dir)}")
    return record


def lineage_row(stage_dir: str | Path, runs_root: str | Path, out_dir: str | Path) -> dict:
    """The lineage table's row of one stage (Markdown cells, for a report in `out_dir`):

    - stage: its dvc.yaml name, with the anchor every number of the stage links to;
    - run record: its run.yaml, by its path from the repository root (runs_root's parent), as
      a link relative to `out_dir`, and its operative.gin (what the stage constructed, the
      code's defaults among it: fourds.config.operative) where the stage wrote one;
    - dvc.lock entry: the entry's key and the md5 of every output the report reads from it;
    - on which device, with which packages.
    """
    stage_dir, runs_root = Path(stage_dir), Path(runs_root)
    record = read_record(stage_dir)
    stage = record["stage"]
    records = [
        _file_link(stage_dir / name, runs_root, out_dir)
        for name in ("run.yaml", "operative.gin")
        if name == "run.yaml" or (stage_dir / name).is_file()
    ]
    digests = [
        f"`{name}` `{dvc_md5(stage_dir / name)}`"
        for name in READ[layout.Stage.named(stage).kind]
        if (stage_dir / name).exists()
    ]
    packages = record.get("packages", {})
    return {
        "stage": f'<span id="{anchor(stage)}"></span>`{stage}`',
        "run record": "<br>".join(records),
        f"{LOCK} entry: outputs' md5": "<br>".join([f"`stages: {stage}`", *digests]),
        "device": record["device"],
        "packages": ", ".join(
            f"{name} {packages[name]}" for name in SHOWN_PACKAGES if name in packages
        ),
    }


def _file_link(path: Path, runs_root: Path, out_dir: str | Path) -> str:
    """A link to `path` relative to `out_dir`, showing its path from the repository root."""
    shown = Path(runs_root.name) / path.relative_to(runs_root)
    href = Path(os.path.relpath(path, out_dir)).as_posix()
    return f'<a href="{html.escape(href)}"><code>{shown.as_posix()}</code></a>'


def corpus_digest(data_dvc: str | Path) -> str:
    """The DVC hash of the embedded corpus (data.dvc's md5 of the data/ folder, the md5 that
    dvc.lock's curate entry records for its `data` dependency)."""
    record = yaml.safe_load(Path(data_dvc).read_text())
    return record["outs"][0]["md5"]
