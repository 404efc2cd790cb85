"""`fourds experiments` (fourds.report.experiments): DVC's experiments, a row each, the params
that tell them apart and every task's headline at the largest scale, in a terminal's width."""

from __future__ import annotations

from fourds.report.experiments import experiments_table, read_experiments
from fourds.tasks import TASKS


def revision(ladder: str, scales: list[str], depth_steps: int, abs_rel: float) -> dict:
    """One revision's data as `dvc exp show --json` gives it."""
    params = {
        "ladder": {"name": ladder, "scales": scales},
        "readouts": {"depth": {"steps": depth_steps}},
        "models": {scale: {"width": 8 * len(scale)} for scale in scales},
    }
    largest = scales[-1]
    metrics = {
        f"runs/readout/{largest}-depth-frozen/metrics.json": {
            "data": {"headline": "abs_rel", "abs_rel": abs_rel}
        },
        f"runs/pretrain/{largest}/metrics.json": {"data": {"heldout_loss": 0.0152}},
    }
    return {"params": {"params.yaml": {"data": params}}, "metrics": metrics}


SHOW = [
    {"rev": "workspace", "name": None, "data": revision("smoke", ["s", "l"], 60, 0.5)},
    {
        "rev": "abcdef0123",
        "name": "main",
        "data": revision("embedded", ["cpu_s", "cpu_l"], 200, 0.340),
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
    assert rows["main"].split()[-1] == "0.0152" and rows["main"].split()[5] == "-"  # no pose run
    assert max(len(line) for line in table.splitlines()) <= 160
