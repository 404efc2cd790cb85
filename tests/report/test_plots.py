"""`dvc plots show`'s scaling plots draw no noise as a trend: parameters on a log axis, each
readout a point with its interval, a control beside it, no line between scales."""

from __future__ import annotations

import json

import pytest
import yaml

from fourds.config.regimes import PRETRAINED
from fourds.config.tasks import TASKS
from fourds.report.compare import TaskScores
from fourds.report.plots import CONTROL_SHIFT, plot_rows
from tests.conftest import REPO_ROOT

REFERENCE = REPO_ROOT / "reports/reference"


def marks(spec: dict) -> list[dict]:
    """Every mark of a Vega-Lite spec, its layers' included."""
    found = [spec["mark"]] if "mark" in spec else []
    return found + [mark for layer in spec.get("layer", []) for mark in marks(layer)]


def test_every_scaling_plot_has_a_log_parameter_axis_intervals_and_no_line():
    template = json.loads((REPO_ROOT / ".dvc/plots/scaling.json").read_text())
    assert template["encoding"]["x"]["scale"]["type"] == "log"
    kinds = [mark["type"] for mark in marks(template)]
    assert "line" not in kinds and "point" in kinds
    (rule,) = [layer for layer in template["layer"] if layer["mark"]["type"] == "rule"]
    assert (rule["encoding"]["y"]["field"], rule["encoding"]["y2"]["field"]) == ("low", "high")
    assert template["encoding"]["color"]["field"] == "regime"  # the control beside, in colour
    report = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]["report"]
    tasks = set()
    for plot in report["plots"]:
        ((path, spec),) = plot.items()
        task = path.removeprefix("reports/out/plot_tables/plot_").removesuffix(".csv")
        tasks.add(task)
        assert (spec["template"], spec["x"], spec["y"]) == ("scaling", "x", TASKS[task].headline)
        assert spec["y_label"] == TASKS[task].title, path  # as the report and README name it
        assert spec["cache"] is False, path  # in git: a fresh clone draws it
    assert tasks == set(TASKS)


@pytest.mark.parametrize("task", ["depth", "boxes"])
def test_plot_rows_are_the_report_s_estimates_with_the_control_beside(task):
    params = yaml.safe_load((REFERENCE / "params.yaml").read_text())
    scales, regimes = params["ladder"]["scales"], params["readout"]["regimes"]
    metric = TASKS[task].headline
    scores = TaskScores.read(REFERENCE, scales, task, regimes, metric, TASKS[task].higher_is_better)
    counts = {
        scale: json.loads((REFERENCE / "pretrain" / scale / "metrics.json").read_text())["params"]
        for scale in scales
    }
    rows = plot_rows(scores, counts, regimes)
    assert len(rows) == len(scales) * len(regimes)
    for row, (scale, regime) in zip(rows, [(s, r) for s in scales for r in regimes], strict=True):
        estimate = scores.estimate(scale, regime)
        assert (row["scale"], row["params"]) == (scale, counts[scale])
        assert (row[metric], row["low"], row["high"]) == (
            estimate.value,
            estimate.low,
            estimate.high,
        )
        assert row["low"] <= row[metric] <= row["high"]
        shipped = json.loads(
            (REFERENCE / "readout" / f"{scale}-{task}-{regime}" / "metrics.json").read_text()
        )
        assert row[metric] == pytest.approx(shipped[metric], rel=1e-9)  # the stage's headline
        if regime == "random_init":
            assert row["x"] == round(counts[scale] * CONTROL_SHIFT)  # beside its scale
            assert row["regime"] == "control (random network)"
        else:
            assert regime == PRETRAINED and row["x"] == counts[scale]
