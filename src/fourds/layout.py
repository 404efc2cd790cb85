"""A study's stage folders and DVC stage names: the one module that spells and parses them.

The stages of dvc.yaml write their results under runs/ (a shipped study, `fourds ship`, keeps
the same layout in its own folder):

    curate/                     stage `curate`
    pretrain/<scale>/           stage `pretrain@<scale>`
    fidelity/<scale>/           stage `fidelity@<scale>`
    readout/<scale>-<regime>/   stage `readout@<scale>-<regime>`: every task of readout.tasks,
                                metrics/<task>.json, clips/<task>.csv, examples/<task>.png

A study run before a scale's tasks were read out in one stage (the shipped references) has a
readout stage per task, `readout@<scale>-<task>-<regime>`, writing
readout/<scale>-<task>-<regime>/ (metrics.json, clips.csv, examples/<task>.png): `ReadoutFiles`
finds a task's files in either. Scale, task and regime names hold no "-" (params check them),
so every name reads back.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

RUNS = Path("runs")  # where dvc.yaml's stages write, in the repository
CURATE, PRETRAIN, FIDELITY, READOUT = "curate", "pretrain", "fidelity", "readout"
KINDS = (CURATE, PRETRAIN, FIDELITY, READOUT)


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a study: its kind (KINDS) and what it is of (none for curate; a scale for
    pretrain and fidelity; a scale and regime for a readout, and a task for a readout stage of
    a study run one task a stage)."""

    kind: str
    scale: str | None = None
    task: str | None = None
    regime: str | None = None

    @property
    def item(self) -> str | None:
        """What follows "@" in its DVC name (None for curate)."""
        if self.kind == READOUT:
            parts = (self.scale, self.regime) if self.task is None else (
                self.scale, self.task, self.regime)  # fmt: skip
            return "-".join(parts)
        return self.scale

    @property
    def name(self) -> str:
        """Its name in dvc.yaml: "curate", "pretrain@cpu_s", "readout@cpu_s-frozen"."""
        return self.kind if self.item is None else f"{self.kind}@{self.item}"

    @property
    def folder(self) -> Path:
        """Its folder inside a study's: curate, pretrain/cpu_s, readout/cpu_s-frozen."""
        return Path(self.kind) if self.item is None else Path(self.kind) / self.item

    @classmethod
    def of_item(cls, kind: str, item: str | None) -> Stage:
        """The stage of `kind` whose name ends "@<item>" (None: curate).

        Raises:
            ValueError: not a stage of a study.
        """
        if kind not in KINDS or (item is None) != (kind == CURATE):
            raise ValueError(f"not a stage of a study: {kind}@{item}")
        if kind != READOUT:
            return cls(kind, item)
        parts = item.split("-")
        if len(parts) == 2:
            return cls(kind, parts[0], None, parts[1])
        if len(parts) != 3:
            raise ValueError(f"not a readout stage: {kind}@{item} (<scale>-<regime>)")
        return cls(kind, *parts)  # a study's stage of one task

    @classmethod
    def named(cls, name: str) -> Stage:
        """The stage dvc.yaml calls `name` ("readout@cpu_s-frozen")."""
        kind, _, item = name.partition("@")
        return cls.of_item(kind, item or None)


def stage_at(path: str | Path) -> Stage | None:
    """The stage whose folder holds `path` (relative to the study's folder: a stage's folder or
    a file in it), or None where it is no stage's."""
    parts = Path(path).parts
    item = parts[1] if len(parts) > 1 and parts[:1] != (CURATE,) else None
    try:
        return Stage.of_item(parts[0], item) if parts else None
    except ValueError:
        return None


def scale_of(name: str) -> str | None:
    """The scale of the stage dvc.yaml calls `name`; None for a stage of the whole study
    (curate, report).

    Raises:
        ValueError: `name` has an item ("kind@item") that is no stage of a study.
    """
    kind, _, item = name.partition("@")
    return Stage.of_item(kind, item).scale if item else None


def curate() -> Stage:
    return Stage(CURATE)


def pretrain(scale: str) -> Stage:
    return Stage(PRETRAIN, scale)


def fidelity(scale: str) -> Stage:
    return Stage(FIDELITY, scale)


def readout(scale: str, regime: str) -> Stage:
    return Stage(READOUT, scale, regime=regime)


def readouts(scales, regimes) -> list[Stage]:
    """The readout stages of every scale and regime, scale by scale."""
    return [readout(scale, regime) for scale in scales for regime in regimes]


@dataclasses.dataclass(frozen=True)
class ReadoutFiles:
    """Where a task's readout results are: its metrics (JSON), its values per test clip (CSV)
    and the folder of its example figure (examples/<task>.png)."""

    metrics: Path
    clips: Path
    examples: Path

    @classmethod
    def inside(cls, folder: str | Path, task: str) -> ReadoutFiles:
        """The files of `task` in the readout stage folder `folder`."""
        folder = Path(folder)
        return cls(folder / "metrics" / f"{task}.json", folder / "clips" / f"{task}.csv",
                   folder / "examples")  # fmt: skip

    @classmethod
    def of(cls, scale: str, task: str, regime: str) -> ReadoutFiles:
        """The files of `task` in readout@<scale>-<regime>, relative to the study's folder."""
        return cls.inside(readout(scale, regime).folder, task)

    @classmethod
    def one_task_a_stage(cls, scale: str, task: str, regime: str) -> ReadoutFiles:
        """The files of `task` in a study run one task a stage (`readout@<scale>-<task>-
        <regime>`, before a scale's tasks were read out together)."""
        folder = Stage(READOUT, scale, task, regime).folder
        return cls(folder / "metrics.json", folder / "clips.csv", folder / "examples")

    @classmethod
    def in_study(cls, study: str | Path, scale: str, task: str, regime: str) -> ReadoutFiles:
        """The files of `task` under the study folder `study` (its runs/), as it holds them:
        one task a stage where that is what it has, else read out together (`of`)."""
        together = cls.of(scale, task, regime).at(study)
        alone = cls.one_task_a_stage(scale, task, regime).at(study)
        return alone if not together.metrics.is_file() and alone.metrics.is_file() else together

    def at(self, study: str | Path) -> ReadoutFiles:
        """These files (relative to a study's folder) under the folder `study`."""
        study = Path(study)
        return ReadoutFiles(study / self.metrics, study / self.clips, study / self.examples)


def readout_result(path: str | Path) -> tuple[Stage, str] | None:
    """(the readout stage, the task) of a task's results file (`ReadoutFiles`'s metrics or
    clips, relative to the study's folder), in either layout; None for any other file."""
    parts = Path(path).parts
    stage = stage_at(path)
    if stage is None or stage.kind != READOUT or len(parts) < 3:
        return None
    if stage.task is not None:  # one task a stage
        return (stage, stage.task) if parts[2:] in (("metrics.json",), ("clips.csv",)) else None
    if len(parts) == 4 and (parts[2], Path(parts[3]).suffix) in (
        ("metrics", ".json"), ("clips", ".csv")):  # fmt: skip
        return stage, Path(parts[3]).stem
    return None
