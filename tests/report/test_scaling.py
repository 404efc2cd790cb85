"""Report tables and plots from stage outputs laid out as the pipeline writes them."""

from __future__ import annotations

import json

import pytest

from fourds import layout
from fourds.report.axes import log_ticks
from fourds.report.paper import PAPER
from fourds.report.scaling import caption, collect, plot_scaling, write_tables

SCALES = {"s": 1_000, "m": 10_000, "l": 100_000}


def write_stage_outputs(root, regimes=("frozen", "finetuned")):
    """pretrain/<scale>/metrics.json and readout/<scale>-<regime>/metrics/depth.json."""
    for scale, params in SCALES.items():
        pretrain = root / "pretrain" / scale
        pretrain.mkdir(parents=True)
        metrics = {"params": params, "pretrain_flops": 6 * params, "loss": 0.1}
        (pretrain / "metrics.json").write_text(json.dumps(metrics))
        for regime in regimes:
            readout = layout.ReadoutFiles.of(scale, "depth", regime).at(root).metrics
            readout.parent.mkdir(parents=True)
            abs_rel = 0.5 * params**-0.1 * (0.8 if regime == "finetuned" else 1.0)
            metrics = {"scale": scale, "task": "depth", "regime": regime, "abs_rel": abs_rel}
            readout.write_text(json.dumps(metrics))


def test_both_regimes_get_their_rows_tables_and_fits(tmp_path):
    write_stage_outputs(tmp_path)
    rows = collect(list(SCALES), ["depth"], ["frozen", "finetuned"], tmp_path)  # fmt: skip
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
    rows = collect(list(SCALES), ["depth"], ["frozen"], tmp_path)
    _, fits = plot_scaling(rows, "depth", "pretrain_flops")
    assert abs(fits["frozen"].law.exponent + 0.1) < 1e-9  # FLOPs proportional to params here


def test_the_control_has_no_pretraining_and_is_not_drawn_against_pretraining_flops(tmp_path):
    write_stage_outputs(tmp_path, regimes=("frozen", "random_init"))
    rows = collect(list(SCALES), ["depth"], ["frozen", "random_init"], tmp_path)  # fmt: skip
    control = [row for row in rows if row["regime"] == "random_init"]
    assert all(row["pretrain_flops"] == 0 and row["pretrain_loss"] is None for row in control)
    assert rows[0]["pretrain_flops"] == 6_000 and rows[0]["pretrain_loss"] == 0.1
    _, on_params = plot_scaling(rows, "depth", "params")
    _, on_flops = plot_scaling(rows, "depth", "pretrain_flops")
    assert set(on_params) == {"frozen", "random_init"} and set(on_flops) == {"frozen"}
    regimes = ["frozen", "random_init"]
    assert "Not drawn: the random-network control" in caption(on_flops, regimes, 3)
    with_paper = caption(on_params, regimes, 3, PAPER["depth"])
    assert "Not drawn" not in with_paper and "bootstrap band" in with_paper
    assert "Right: the paper's numbers (ScanNet; Carreira et al. (2024)" in with_paper
    assert "arXiv:2412.15212, its scaling figure" in with_paper


def test_one_scale_is_drawn_without_a_fit_and_its_caption_says_why(tmp_path):
    write_stage_outputs(tmp_path, regimes=("frozen",))
    rows = collect(["m"], ["depth"], ["frozen"], tmp_path)
    for x_key in ("params", "pretrain_flops"):
        _, fits = plot_scaling(rows, "depth", x_key, tmp_path / f"{x_key}.png", PAPER["depth"])
        assert fits == {"frozen": None} and (tmp_path / f"{x_key}.png").stat().st_size > 0
    text = caption(fits, ["frozen"], 1)
    assert "No fit: a power law needs two or more scales, and the study has one." in text
    assert "band" not in text


def overlaps(boxes) -> bool:
    """Whether any two of the display boxes overlap."""
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


@pytest.mark.parametrize("x_key", ["params", "pretrain_flops"])
def test_figures_have_plain_tick_labels_apart_and_point_labels_inside(tmp_path, x_key):
    write_stage_outputs(tmp_path, regimes=("frozen", "random_init"))
    rows = collect(list(SCALES), ["depth"], ["frozen", "random_init"], tmp_path)  # fmt: skip
    paper = PAPER["depth"] if x_key == "params" else None
    figure, _ = plot_scaling(rows, "depth", x_key, paper=paper)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    for axis in figure.axes:
        for ticks in (axis.get_xticklabels(), axis.get_yticklabels()):
            texts = [tick.get_text() for tick in ticks if tick.get_text()]
            assert len(texts) >= 2, texts
            assert not any(mark in text for text in texts for mark in ("e", "$", "^")), texts
        boxes = [tick.get_window_extent(renderer) for tick in axis.get_xticklabels()]
        assert not overlaps([box for box in boxes if box.width]), x_key
        inside = axis.get_window_extent(renderer)
        for label in axis.texts:
            box = label.get_window_extent(renderer)
            assert inside.x0 <= box.x0 and box.x1 <= inside.x1, label.get_text()
            assert inside.y0 <= box.y0 and box.y1 <= inside.y1, label.get_text()
    if x_key == "pretrain_flops":  # 6,000 to 600,000 FLOPs, the power of ten named once
        assert "×1e3" in figure.axes[0].get_xlabel()


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [
        (5e5, 6e6, [5e5, 1e6, 2e6, 5e6]),  # one to two decades: 1, 2, 5
        (2e7, 2.2e10, [1e8, 1e9, 1e10]),  # more: one per decade
        (0.2611, 0.2668, [0.262, 0.264, 0.266]),  # within a decade: round steps
    ],
)
def test_log_axes_get_a_few_round_ticks(low, high, ticks):
    assert log_ticks(low, high) == pytest.approx(ticks)
