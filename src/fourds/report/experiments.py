"""`fourds experiments`: a repository's DVC experiments as one narrow table, a row each, with
the params that tell them apart and each task's headline at the largest scale.

`dvc exp show` lists every param and every metric of every stage (over a thousand columns for
the default study); this reads its JSON (`dvc exp show --json`) and keeps, per experiment (and
per commit they branch from): the params whose values differ between the rows (the scales'
model shapes left out: `ladder.name` says which; what sets the row apart from most runs of
its ladder first, then what else tells those runs apart, shortest first), the largest scale of
its ladder, the headline of every task's pretrained readout there and that scale's held-out
MAE loss.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import subprocess

from fourds import layout
from fourds.config.regimes import PRETRAINED
from fourds.config.tasks import TASKS
from fourds.report.numbers import significant

CHANGED_WIDTH = 56  # characters of the changed params' column (longer lists end in "...")
LADDER = "ladder.name"
HIDDEN = ("models.", "ladder.scales")  # follow from ladder.name


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One row: its name, params (flattened: "pretrain.lr" -> 0.001) and metrics files (path
    -> their data)."""

    name: str
    params: dict[str, object]
    metrics: dict[str, dict]


def read_experiments(show: list[dict]) -> list[Experiment]:
    """The rows of `dvc exp show --json` output: each commit that experiments branch from (by
    its name, or its short hash), then its experiments; the workspace left out."""
    rows = []
    for commit in show:
        if commit["rev"] == "workspace":
            continue
        revisions = [(commit.get("name") or commit["rev"][:7], commit)]
        for experiment in commit.get("experiments") or []:
            revision = experiment["revs"][0]
            revisions.append((experiment.get("name") or revision["rev"][:7], revision))
        for name, revision in revisions:
            data = revision.get("data") or {}
            params = (data.get("params") or {}).get("params.yaml", {}).get("data") or {}
            metrics = {
                path: entry.get("data") or {} for path, entry in (data.get("metrics") or {}).items()
            }
            rows.append(Experiment(name, _flat(params), metrics))
    return rows


def experiments_table(rows: list[Experiment]) -> str:
    """The table, a line per row, at most CHANGED_WIDTH + about 90 characters wide."""
    keys = sorted({key for row in rows for key in row.params} - {LADDER})
    changed = _differing([LADDER, *keys], rows)
    ladders = [[row for row in rows if row.params.get(LADDER) == name]
               for name in {row.params.get(LADDER) for row in rows}]  # fmt: skip
    within = {key for group in ladders for key in _differing(keys, group)}
    usual = {
        (group[0].params.get(LADDER), key): collections.Counter(
            repr(row.params.get(key)) for row in group
        ).most_common(1)[0][0]
        for group in ladders
        for key in within
    }
    header = ["experiment", "params that differ", "largest", *TASKS, "held-out loss"]
    lines = [header]
    for row in rows:
        scales = row.params.get("ladder.scales") or [""]
        largest = scales[-1]

        own = {key for key in within if _unusual(row, key, usual)}
        shown = {key: f"{key}={row.params.get(key)}" for key in changed}
        # the ladder first, then what sets this row apart from the runs of its ladder, then
        # what else tells those runs apart, shortest first (more of it fits), then what a
        # ladder sets
        order = sorted(
            changed,
            key=lambda key: (key != LADDER, key not in own, key not in within, len(shown[key])),
        )
        settings = ", ".join(shown[key] for key in order)
        if len(settings) > CHANGED_WIDTH:
            settings = settings[: CHANGED_WIDTH - 3] + "..."
        headlines = [_headline(row, largest, task) for task in TASKS]
        pretrain = row.metrics.get(_metrics_file(layout.pretrain(largest)), {})
        loss = pretrain.get("heldout_loss")
        lines.append([row.name, settings or "-", largest, *headlines, _number(loss)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return (
        "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
            for line in lines
        )
        + "\n"
    )


def dvc_experiments(repository: str = ".") -> list[dict]:
    """`dvc exp show --json` in `repository` (every commit's experiments, on all branches).

    Raises:
        FileNotFoundError: DVC could not list them (not a DVC repository, DVC missing).
    """
    done = subprocess.run(
        ["dvc", "exp", "show", "--json", "--all-branches"],
        cwd=repository, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise FileNotFoundError(f"dvc exp show failed in {repository}: {reason}")
    return json.loads(done.stdout)


def _differing(keys: list[str], rows: list[Experiment]) -> list[str]:
    """The `keys` whose values differ between `rows` (the model shapes left out)."""
    return [
        key for key in keys
        if not key.startswith(HIDDEN) and len({repr(row.params.get(key)) for row in rows}) > 1
    ]  # fmt: skip


def _unusual(row: Experiment, key: str, usual: dict[tuple[object, str], str]) -> bool:
    """Whether `row`'s value of `key` is not the one most runs of its ladder have (`usual`:
    (ladder, key) -> that value's repr)."""
    return usual.get((row.params.get(LADDER), key)) not in (None, repr(row.params.get(key)))


def _headline(row: Experiment, scale: str, task: str) -> str:
    """The headline of `task`'s pretrained readout at `scale` ("-" where it did not run), in
    either layout (an experiment run one task a stage too)."""
    layouts = (layout.ReadoutFiles.of, layout.ReadoutFiles.one_task_a_stage)
    paths = [files(scale, task, PRETRAINED).at(layout.RUNS).metrics for files in layouts]
    metrics = next((row.metrics[p.as_posix()] for p in paths if p.as_posix() in row.metrics), {})
    return _number(metrics.get(metrics.get("headline", ""), None))


def _metrics_file(stage: layout.Stage) -> str:
    """The key of `stage`'s metrics.json in `dvc exp show --json` (its path in the repository)."""
    return (layout.RUNS / stage.folder / "metrics.json").as_posix()


def _number(value: object) -> str:
    return significant(value) if isinstance(value, int | float) else "-"


def _flat(tree: dict, prefix: str = "") -> dict[str, object]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat
