"""A study's stage folders and DVC stage names: the one module that spells and parses them.

The stages of dvc.yaml write their results under runs/ (a shipped study, `fourds ship`, keeps
the same layout in its own folder):

    curate/                            stage `curate`
    pretrain/<scale>/                  stage `pretrain@<scale>`
    fidelity/<scale>/                  stage `fidelity@<scale>`
    readout/<scale>-<task>-<regime>/   stage `readout@<scale>-<task>-<regime>`

Scale, task and regime names hold no "-" (params check them), so a readout's name reads back.
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
    pretrain and fidelity; a scale, task and regime for a readout)."""

    kind: str
    scale: str | None = None
    task: str | None = None
    regime: str | None = None

    @property
    def item(self) -> str | None:
        """What follows "@" in its DVC name (None for curate)."""
        if self.kind == READOUT:
            return readout_name(self.scale, self.task, self.regime)
        return self.scale

    @property
    def name(self) -> str:
        """Its name in dvc.yaml: "curate", "pretrain@cpu_s", "readout@cpu_s-depth-frozen"."""
        return self.kind if self.item is None else f"{self.kind}@{self.item}"

    @property
    def folder(self) -> Path:
        """Its folder inside a study's: curate, pretrain/cpu_s, readout/cpu_s-depth-frozen."""
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
        if len(parts) != 3:
            raise ValueError(f"not a readout stage: {kind}@{item} (<scale>-<task>-<regime>)")
        return cls(kind, *parts)

    @classmethod
    def named(cls, name: str) -> Stage:
        """The stage dvc.yaml calls `name` ("readout@cpu_s-depth-frozen")."""
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


def readout_name(scale: str, task: str, regime: str) -> str:
    """A readout stage's item in its study, `<scale>-<task>-<regime>`: dvc.yaml's matrix stage
    is `readout@<item>`, its folder `readout/<item>`."""
    return f"{scale}-{task}-{regime}"


def curate() -> Stage:
    return Stage(CURATE)


def pretrain(scale: str) -> Stage:
    return Stage(PRETRAIN, scale)


def fidelity(scale: str) -> Stage:
    return Stage(FIDELITY, scale)


def readout(scale: str, task: str, regime: str) -> Stage:
    return Stage(READOUT, scale, task, regime)


def readouts(scales, tasks, regimes) -> list[Stage]:
    """The readout stages of every scale, task and regime, scale by scale, then task by task."""
    return [readout(s, t, r) for s in scales for t in tasks for r in regimes]
