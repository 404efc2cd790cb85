"""Shipped results: a study's results copied into a folder the repository keeps, and a
regeneration compared with them number by number.

`ship` copies, for the ladder a params file names, what a reviewer reads without compute:

    <out>/params.yaml, <out>/dvc.lock      the run's params and lock (every stage's command,
                                           params and dependency and output hashes; the
                                           entries of the ladder's stages only: DVC keeps those
                                           of stages another ladder ran)
    <out>/curate/metrics.json
    <out>/pretrain/<scale>/                metrics.json, loss.csv (the loss curve), run.yaml
    <out>/readout/<scale>-<regime>/        metrics/<task>.json, clips/<task>.csv (per test
                                           clip), run.yaml
    <out>/fidelity/<scale>/                metrics.json, run.yaml
    <out>/report/                          the executed report (scaling.html, scaling.ipynb),
                                           its tables, figures and plot tables
    <out>/checkpoints/<scale>.pt           the pretrained weights, for DVC to track
                                           (`dvc add <out>/checkpoints`, then `dvc push`)

Each folder with a run.yaml also gets the stage's execution.yaml (when it finished, at which
commit, how long it took) where it belongs to that run.yaml (fourds.records.belongs_to).
Stages that have not run are left out and named. Shipping again replaces the folder whole
(DVC's .gitignore aside): run `dvc add` again after it. `compare` reads every metrics.json and
clips.csv in a shipped folder and the same file under a runs folder, and lists each number
that differs by more than a tolerance, each file the regeneration lacks and each stage of the
study (by its params.yaml) that the shipped folder lacks where the regeneration has it (or, for a
partial regeneration, only the stages it ran); a damaged file is one line naming it.
`pinned_at` lays out the default study's pin as committed at a git revision (params.yaml,
dvc.lock and every results file git keeps under runs/) as `ship` would, so that a regeneration
of the default compares with its own pin.
"""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
import tarfile
from collections.abc import Collection, Iterator
from pathlib import Path

import yaml

from fourds import layout
from fourds.atomic import atomic_directory
from fourds.config import StudyLayout
from fourds.records import EXECUTION_RECORD, belongs_to
from fourds.results_files import read_clip_rows, read_metrics
from fourds.tolerances import EXACT, Contract, Tolerance, seed_margins

RESULTS = ("metrics.json", "clips.csv")  # the files `compare` reads (and each readout's)


def stage_files(study: StudyLayout) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(stage folder under runs/, the files shipped from it, relative to it, its results file
    first) for every stage of `study`."""
    yield layout.curate().folder.as_posix(), ("metrics.json",)
    for scale in study.scales:
        yield layout.pretrain(scale).folder.as_posix(), ("metrics.json", "loss.csv", "run.yaml")
        for regime in study.regimes:
            folder = layout.readout(scale, regime).folder
            task_files = [layout.ReadoutFiles.inside(Path(), task) for task in study.tasks]
            names = [p.as_posix() for files in task_files for p in (files.metrics, files.clips)]
            yield folder.as_posix(), (*names, "run.yaml")
        yield layout.fidelity(scale).folder.as_posix(), ("metrics.json", "run.yaml")


def results_files(folder: Path) -> set[Path]:
    """Every results file `compare` reads in a study's folder (shipped or runs/), relative to
    it: each stage's metrics.json and clips.csv, and each readout's metrics and clips."""
    found = {path for name in RESULTS for path in folder.rglob(name)}
    found = {path.relative_to(folder) for path in found}
    readouts = folder.glob(f"{layout.READOUT}/*/*/*")  # a readout's metrics/<task>.json, ...
    return found | {path.relative_to(folder) for path in readouts
                    if layout.readout_result(path.relative_to(folder))}  # fmt: skip


def counterpart(relative: Path, runs: Path) -> Path:
    """The file in the study folder `runs` that holds what the results file `relative` (of
    another study's folder) holds: the same path, or for a readout's results the same task's
    in the layout `runs` has (fourds.layout.ReadoutFiles.in_study)."""
    readout = layout.readout_result(relative)
    if readout is None:
        return runs / relative
    stage, task = readout
    files = layout.ReadoutFiles.in_study(runs, stage.scale, task, stage.regime)
    return files.metrics if relative.suffix == ".json" else files.clips


def ladder_lock(lock: Path, scales: Collection[str]) -> str:
    """The DVC lock `lock` with only the entries of the stages of the ladder's `scales`, as
    YAML."""
    ladder = set(scales)

    def of_ladder(stage: str) -> bool:  # "curate", "pretrain@ref_s", "readout@ref_s-depth-frozen"
        scale = layout.scale_of(stage)
        return scale is None or scale in ladder

    entries = yaml.safe_load(lock.read_text())
    entries["stages"] = {
        name: entry for name, entry in entries["stages"].items() if of_ladder(name)
    }
    return yaml.safe_dump(entries, sort_keys=False)


def ship(
    study: StudyLayout, params_path: Path, lock: Path, runs: Path, report: Path, out: Path
) -> list[str]:
    """Copy the results of `study`'s run in `runs` (and its `lock`, `params_path`, `report`
    folder) into `out`, replacing it whole. Returns the stage folders that had no results.

    Raises:
        WeightsError: a checkpoint is damaged (its content digest differs); nothing is shipped.
    """
    from fourds.models.weights import verify_weights  # imports torch, which `compare` needs not

    missing = []
    with atomic_directory(out) as staging:
        shutil.copy2(params_path, staging / "params.yaml")
        (staging / "dvc.lock").write_text(ladder_lock(lock, study.scales))
        for stage, names in stage_files(study):
            if not (runs / stage / names[0]).is_file():
                missing.append(stage)
                continue
            for name in names:
                (staging / stage / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(runs / stage / name, staging / stage / name)
            if "run.yaml" in names and belongs_to(runs / stage):  # when, which commit, how long
                shutil.copy2(runs / stage / EXECUTION_RECORD, staging / stage / EXECUTION_RECORD)
        (staging / "checkpoints").mkdir()
        for scale in study.scales:
            weights = runs / layout.pretrain(scale).folder / "checkpoint.pt"
            if weights.is_file():
                verify_weights(weights)
                shutil.copy2(weights, staging / "checkpoints" / f"{scale}.pt")
        if (report / "scaling.html").is_file():  # the folder alone may hold DVC's .gitignore
            (staging / "report").mkdir()
            for name in ("scaling.html", "scaling.ipynb"):
                shutil.copy2(report / name, staging / "report" / name)
            for folder in ("tables", "figures", "plot_tables"):
                shutil.copytree(report / folder, staging / "report" / folder)
        else:
            missing.append("report")
    return missing


@dataclasses.dataclass(frozen=True)
class Difference:
    """One number (or file) of a regeneration that is not the shipped one."""

    path: str  # the file, relative to the shipped folder
    key: str  # the metric (dotted for nested metrics) or "column, row" of a clips.csv
    shipped: str
    regenerated: str


def _flat(metrics: dict, prefix: str = "") -> dict[str, object]:
    """{"a": {"b": 1}, "c": [2, 3]} -> {"a.b": 1, "c.0": 2, "c.1": 3}: every number its own
    key, so that each is held to the tolerance (a readout's per-seed lists too)."""
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, list):
            value = dict(enumerate(value))
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _values(path: Path) -> dict[str, object]:
    """A results file as {key: value}: metrics.json flattened, clips.csv by "column, row".

    Raises:
        ResultsError: the file cannot be read as its kind (cut short, not JSON, not CSV).
    """
    if path.suffix == ".json":
        return _flat(read_metrics(path))
    return {
        f"{column}, row {index}": value
        for index, row in enumerate(read_clip_rows(path))
        for column, value in row.items()
    }


def compare(
    shipped: Path, runs: Path, contract: Contract = EXACT, only_regenerated: bool = False
) -> list[Difference]:
    """Every number of the results files in `shipped` that `runs` does not reproduce within
    the `contract`'s tolerance for its file (fourds.tolerances; exact by default), and every
    key or file it lacks; with `only_regenerated`, only the stages whose folder in `runs` holds
    a metrics.json (a partial regeneration)."""
    differences = []
    for relative in sorted(results_files(shipped) | _study_files(shipped)):
        if relative.parts[0] == "report":
            continue  # the report is derived from the stages' files compared here
        expected, regenerated = shipped / relative, counterpart(relative, runs)
        if only_regenerated and not counterpart(_metrics_of(relative), runs).is_file():
            continue
        if not expected.is_file():  # a run of the study that the shipped folder lacks
            if regenerated.is_file():
                differences.append(Difference(str(relative), "(file)", "missing", "present"))
            continue
        if not regenerated.is_file():
            differences.append(Difference(str(relative), "(file)", "present", "missing"))
            continue
        old, new = _values(expected), _values(regenerated)
        tolerance = contract.for_file(relative)
        margins = _seed_margins(shipped, relative, tolerance)
        for key in sorted(old.keys() | new.keys()):
            a, b = old.get(key, "missing"), new.get(key, "missing")
            if not tolerance.allows(a, b, margins.get(key, 0.0)):
                differences.append(Difference(str(relative), key, str(a), str(b)))
    return differences


def _metrics_of(relative: Path) -> Path:
    """The metrics file of the stage (or readout) whose results file is `relative`."""
    readout = layout.readout_result(relative)
    if readout is None:
        return relative.parent / "metrics.json"
    stage, task = readout
    files = layout.ReadoutFiles.of if stage.task is None else layout.ReadoutFiles.one_task_a_stage
    return files(stage.scale, task, stage.regime).metrics


def _seed_margins(study: Path, relative: Path, tolerance: Tolerance) -> dict[str, float]:
    """metric -> its margin in its readout seeds' noise (fourds.tolerances.seed_margins), for
    a readout's metrics in the study folder `study` whose family has a seed_margin; else {}."""
    readout = layout.readout_result(relative)
    if readout is None or relative.suffix != ".json" or not tolerance.seed_margin:
        return {}
    stage, task = readout
    files = layout.ReadoutFiles.in_study(study, stage.scale, task, stage.regime)
    return seed_margins(read_metrics(files.metrics), files.clips, tolerance.seed_margin)


def _study_files(shipped: Path) -> set[Path]:
    """The results files every stage of the study in `shipped` writes, by its params.yaml
    read as plain YAML (a shipped study's params may predate today's schema); none without."""
    try:
        raw = yaml.safe_load((shipped / "params.yaml").read_text())
        study = StudyLayout(
            tuple(raw["ladder"]["scales"]),
            tuple(raw["readout"]["tasks"]),
            tuple(raw["readout"]["regimes"]),
        )
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return set()
    files = [Path(stage) / name for stage, names in stage_files(study) for name in names]
    results = [file for file in files if file.name in RESULTS or layout.readout_result(file)]
    return {counterpart(file, shipped).relative_to(shipped) for file in results}  # its layout


def ran_here(runs: Path) -> bool:
    """Whether any stage ran into `runs` on this machine: its execution record is there
    (written by a stage as it runs; neither git, `dvc pull` nor DVC's run cache brings it)."""
    return any(runs.glob(f"*/{EXECUTION_RECORD}")) or any(runs.glob(f"*/*/{EXECUTION_RECORD}"))


def format_differences(differences: list[Difference]) -> str:
    """A table of the differences, one per line, with a header; "" when there are none."""
    if not differences:
        return ""
    rows = [("path", "metric", "shipped", "regenerated")]
    rows += [(d.path, d.key, d.shipped, d.regenerated) for d in differences]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


PINNED = ("params.yaml", "dvc.lock", "runs")  # what git keeps of the default's pin


def pinned_at(revision: str, folder: Path, repository: Path = Path(".")) -> Path:
    """The pin of the study in `repository` as committed at git `revision`, written to
    `folder` in `ship`'s layout (runs/<stage>/... as <stage>/...); returns `folder`.

    Raises:
        FileNotFoundError: `revision` is not a commit of a git repository holding a pin.
    """
    archive = subprocess.run(
        ["git", "-C", str(repository), "archive", "--format=tar", revision, "--", *PINNED],
        capture_output=True,
    )
    if archive.returncode != 0:
        raise FileNotFoundError(
            f"{revision}: neither a folder of shipped results nor a git revision holding "
            f"{', '.join(PINNED)} ({archive.stderr.decode().strip().splitlines()[-1]})"
        )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if member.isfile() and ".." not in parts:
                target = folder.joinpath(*(parts[1:] if parts[0] == "runs" else parts))
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    return folder
