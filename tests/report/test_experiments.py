"""`fourds experiments` (fourds.report.experiments): DVC's experiments, a row each, the params
that tell them apart and every task's headline at the largest scale, in a terminal's width."""

from __future__ import annotations

import copy

from fourds.config.tasks import TASKS
from fourds.report.experiments import experiments_table, read_experiments


def revision(
    ladder: str, scales: list[str], depth_steps: int, abs_rel: float, together: bool = True
) -> dict:
    """One revision's data as `dvc exp show --json` gives it: its readouts a stage per scale
    and regime (runs/readout/<scale>-<regime>/metrics/<task>.json), or, not `together`, a
    stage per task (runs/readout/<scale>-<task>-<regime>/metrics.json, as before)."""
    params = {
        "ladder": {"name": ladder, "scales": scales},
        "readouts": {"depth": {"steps": depth_steps}},
        "models": {scale: {"width": 8 * len(scale)} for scale in scales},
    }
    largest = scales[-1]
    depth = (f"runs/readout/{largest}-frozen/metrics/depth.json" if together
             else f"runs/readout/{largest}-depth-frozen/metrics.json")  # fmt: skip
    metrics = {
        depth: {"data": {"headline": "abs_rel", "abs_rel": abs_rel}},
        f"runs/pretrain/{largest}/metrics.json": {"data": {"heldout_loss": 0.0152}},
    }
    return {"params": {"params.yaml": {"data": params}}, "metrics": metrics}


SHOW = [
    {"rev": "workspace", "name": None, "data": revision("smoke", ["s", "l"], 60, 0.5)},
    {
        "rev": "abcdef0123",
        "name": "main",
        "data": revision("embedded", ["cpu_s", "cpu_l"], 200, 0.340, together=False),
        "experiments": [
            {"name": name, "revs": [{"rev": rev, "data": revision("smoke", ["s", "l"], steps, v)}]}
            for name, rev, steps, v in (
                ("smoke", "1234567", 30, 0.35),
                ("smoke-depth-60", "7654321", 60, 0.349),
            )
        ],
    },
]  # fmt: skip


def test_a_row_per_experiment_with_what_tells_them_apart_and_the_headlines():
    table = experiments_table(read_experiments(SHOW))
    header, *lines = table.splitlines()
    assert header.split()[:2] == ["experiment", "params"] and all(task in header for task in TASKS)
    rows = {line.split()[0]: line for line in lines}
    assert list(rows) == ["main", "smoke", "smoke-depth-60"]  # the workspace left out
    assert "ladder.name=smoke, readouts.depth.steps=60" in rows["smoke-depth-60"]
    assert "ladder.name=embedded, readouts.depth.steps=200" in rows["main"]
    assert "models." not in table and "ladder.scales" not in table  # they follow from the ladder
    assert rows["smoke"].split()[3:5] == ["l", "0.350"]  # largest scale, its depth headline
    assert rows["main"].split()[3:5] == ["cpu_l", "0.340"]  # read out one task a stage
    assert rows["main"].split()[-1] == "0.0152" and rows["main"].split()[5] == "-"  # no pose run
    assert max(len(line) for line in table.splitlines()) <= 160


def test_each_row_shows_first_what_sets_it_apart_from_its_ladders_runs():
    """getting-started's first run (two tasks) beside the walkthrough's smoke experiments: the
    long task list differs between the smoke runs, yet the depth variant's row leads with its
    depth steps and the first run's with its tasks."""
    show = copy.deepcopy(SHOW)
    tasks = ["depth", "pose", "tracking", "boxes", "classification"]
    experiments = []
    for name, steps, ran in (("smoke", 30, tasks), ("smoke-depth-60", 60, tasks),
                             ("first", 30, ["depth", "tracking"])):  # fmt: skip
        data = revision("smoke", ["s", "l"], steps, 0.35)
        data["params"]["params.yaml"]["data"]["readout"] = {"tasks": ran}
        experiments.append({"name": name, "revs": [{"rev": name[:7], "data": data}]})
    show[1] = {**show[1], "experiments": experiments}
    show[1]["data"]["params"]["params.yaml"]["data"]["readout"] = {"tasks": tasks}
    table = experiments_table(read_experiments(show))
    rows = {line.split()[0]: line for line in table.splitlines()}
    assert "ladder.name=smoke, readouts.depth.steps=60, readout.t" in rows["smoke-depth-60"]
    assert "ladder.name=smoke, readout.tasks=['depth', 'tracking'" in rows["first"]
    assert "ladder.name=smoke, readouts.depth.steps=30, readout.t" in rows["smoke"]  # shortest
