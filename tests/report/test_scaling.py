"""Report tables and plots from stage outputs laid out as the pipeline writes them."""

from __future__ import annotations

import json

from fourds.report.paper import PAPER
from fourds.report.scaling import collect, plot_scaling, write_tables

SCALES = {"s": 1_000, "m": 10_000, "l": 100_000}


def write_stage_outputs(root, regimes=("frozen", "finetuned")):
    """pretrain/<scale>/metrics.json and readout/<scale>-depth-<regime>/metrics.json."""
    for scale, params in SCALES.items():
        pretrain = root / "pretrain" / scale
        pretrain.mkdir(parents=True)
        metrics = {"params": params, "pretrain_flops": 6 * params, "loss": 0.1}
        (pretrain / "metrics.json").write_text(json.dumps(metrics))
        for regime in regimes:
            readout = root / "readout" / f"{scale}-depth-{regime}"
            readout.mkdir(parents=True)
            abs_rel = 0.5 * params**-0.1 * (0.8 if regime == "finetuned" else 1.0)
            metrics = {"scale": scale, "task": "depth", "regime": regime, "abs_rel": abs_rel}
            (readout / "metrics.json").write_text(json.dumps(metrics))


def test_both_regimes_get_their_rows_tables_and_fits(tmp_path):
    write_stage_outputs(tmp_path)
    rows = collect(list(SCALES), ["depth"], ["frozen", "finetuned"], tmp_path / "pretrain",
                   tmp_path / "readout")  # fmt: skip
    assert [(row["scale"], row["regime"]) for row in rows[:2]] == [
        ("s", "frozen"),
        ("s", "finetuned"),
    ]
    assert rows[0]["pretrain_flops"] == 6_000
    paths = write_tables(rows, tmp_path / "tables")
    assert sorted(path.name for path in paths) == [
        "scaling_depth.csv",
        "scaling_depth_finetuned.csv",
    ]
    _, fits = plot_scaling(rows, "depth", "params", tmp_path / "depth.png", PAPER["depth"])
    for regime in ("frozen", "finetuned"):
        assert abs(fits[regime].law.exponent + 0.1) < 1e-9
    assert fits["finetuned"].law.coefficient < fits["frozen"].law.coefficient
    assert (tmp_path / "depth.png").stat().st_size > 0


def test_pretraining_flops_is_an_axis_too(tmp_path):
    write_stage_outputs(tmp_path, regimes=("frozen",))
    rows = collect(list(SCALES), ["depth"], ["frozen"], tmp_path / "pretrain", tmp_path / "readout")
    _, fits = plot_scaling(rows, "depth", "pretrain_flops")
    assert abs(fits["frozen"].law.exponent + 0.1) < 1e-9  # FLOPs proportional to params here
