"""The report's Markdown tables: formatted numbers, human units, a task's stages side by side."""

from __future__ import annotations

from fourds.report.lineage import link
from fourds.report.tables import fold, markdown_table, stage_table, with_units


def stage_rows() -> list[dict]:
    """collect()'s rows of one task: a pretrained readout and the control at two scales."""
    rows = []
    for scale, params, flops in (("s", 508896, 10164161740800), ("l", 5692416, 19045369774080)):
        for regime in ("frozen", "random_init"):
            pretrained = regime == "frozen"
            rows.append(
                {
                    "scale": scale,
                    "task": "depth",
                    "regime": regime,
                    "params": params,
                    "pretrain_flops": flops if pretrained else 0,
                    "pretrain_loss": 0.021890601 if pretrained else None,
                    "abs_rel": 0.26113843849,
                    "test_clips": 96,
                    "baseline_abs_rel": 0.266636324,
                }
            )
    return rows


def test_table_cells_have_three_significant_figures_and_a_dash_for_what_is_missing():
    table = markdown_table([{"name": "a", "value": 0.0002227, "count": 96, "loss": None}])
    assert table.splitlines() == [
        "| name | value | count | loss |",
        "|---|---|---|---|",
        "| a | 0.000223 | 96 | — |",
    ]


def test_parameters_and_flops_are_written_in_human_units():
    rows = with_units(stage_rows())
    assert rows[0]["parameters"] == "509k" and rows[2]["parameters"] == "5.69M"
    flops = "pretraining FLOPs (×1e13)"
    assert [round(row[flops], 3) for row in rows] == [1.016, 0, 1.905, 0]
    assert "params" not in rows[0] and rows[1]["final pretraining loss"] is None


def test_a_stage_table_has_a_column_per_stage_and_each_metric_beside_its_baseline():
    table = stage_table(stage_rows())
    assert list(table[0]) == [
        "quantity",
        *(
            link(f"{scale} {regime}", f"readout@{scale}-{regime}")
            for scale in ("s", "l")
            for regime in ("frozen", "random_init")
        ),
    ]
    assert [row["quantity"] for row in table] == [
        "parameters",
        "pretraining FLOPs (×1e13)",
        "final pretraining loss",
        "abs_rel",
        "abs_rel, baseline",
        "test_clips",
    ]
    markdown = markdown_table(table)
    assert "| final pretraining loss | 0.0219 | — | 0.0219 | — |" in markdown
    assert "| pretraining FLOPs (×1e13) | 1.02 | 0 | 1.90 | 0 |" in markdown


def test_a_folded_table_opens_on_its_summary_and_keeps_its_markdown():
    folded = fold("Tables", "| a |\n|---|\n| 1 |")
    assert folded.startswith("<details><summary>Tables</summary>\n\n| a |")
    assert folded.endswith("| 1 |\n\n</details>")
