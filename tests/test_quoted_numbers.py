"""Measured numbers the pages quote are their result files' numbers: a new measurement that
changes one fails here until the page says it (the GPU step: benchmarks/results/gpu/summary.json;
the GPU study's runs: benchmarks/results/gpu-study/ and gpu-study-2/; the results tables are
checked by tests/test_readme.py)."""

from __future__ import annotations

import json
import re
import tarfile

import pytest
import yaml

from tests.conftest import REPO_ROOT

SUMMARY = json.loads((REPO_ROOT / "benchmarks/results/gpu/summary.json").read_text())


def case(scale: str, what: str, compiled: bool, batch: int = 128) -> dict:
    wanted = (scale, what, compiled, batch)
    rows = SUMMARY["cases"]
    (found,) = [
        row for row in rows if (row["scale"], row["what"], row["compile"], row["batch"]) == wanted
    ]
    return found


def share(row: dict) -> int:
    """Percent of the measured bf16 ceiling."""
    return round(100 * row["tflops"] / SUMMARY["gemm_tflops"])


def page(name: str) -> str:
    """The page's text with every run of white space one space (quotes may wrap)."""
    return re.sub(r"\s+", " ", (REPO_ROOT / name).read_text())


SECOND = REPO_ROOT / "benchmarks/results/gpu-study-2"  # the second design's run
RATE = json.loads((SECOND / "world_rate.json").read_text())["results"]
with tarfile.open(SECOND / "study-partial.tar.gz") as archive:
    STUDY_PARAMS = yaml.safe_load(archive.extractfile("params.yaml"))
    STUDY_READOUTS = sum(
        name.startswith("runs/readout/") and name.endswith("/execution.yaml")
        for name in archive.getnames()
    )
STUDY_CLIPS = STUDY_PARAMS["pretrain"]["steps"] * STUDY_PARAMS["pretrain"]["batch_size"]
L_MODEL, B_MODEL = case("4ds_l", "model", True), case("4ds_b", "model", True)
L_STEP, B_STEP = case("4ds_l", "step", True), case("4ds_b", "step", True)
L_EAGER, B_EAGER = case("4ds_l", "model", False), case("4ds_b", "model", False)
QUOTES = {
    "README.md": [f"4DS-L at {share(L_MODEL)}% of the chip's matrix rate"],
    "docs/performance.md": [
        f"(commit {SUMMARY['commit'][:7]})",
        f"a measured {SUMMARY['gemm_tflops']:.0f} TFLOP/s bf16 ceiling",
        f"4DS-L at 128 clips a GPU trains at {share(L_MODEL)}% of it",
        f"({L_MODEL['ms']:.1f} ms a step)",
        f"4DS-B at {share(B_MODEL)}% ({B_MODEL['ms']:.1f} ms",
        f"Eager, the same steps take {L_EAGER['ms']:.0f} and {B_EAGER['ms']:.0f} ms",
    ],
    "docs/gpu-study.md": [
        f"{STUDY_READOUTS} of 30 ran",
        f"the eager render ({RATE['render_clips_per_s']:.0f} clips/s at gpu_l)",
        f"scale {STUDY_CLIPS:,} fresh clips",
    ],
    "docs/pretraining.md": [
        f"4DS-B's whole step at 128 clips takes {B_STEP['ms']:.1f} ms with each block compiled",
        f"({B_STEP['clips_per_s']:,.0f} clips/s",
        f"4DS-L's {L_STEP['ms']:.1f} ms",
        f"commit {SUMMARY['commit'][:7]}",
    ],
}


@pytest.mark.parametrize("name", sorted(QUOTES))
def test_the_pages_quote_the_gpu_step_as_measured(name):
    text = page(name)
    for quote in QUOTES[name]:
        assert quote in text, f"{name} should say: {quote}"


def test_the_official_page_quotes_the_paper_as_fourds_records_it():
    """docs/official-checkpoints.md's "what to match" row is fourds.report.paper's 4B column
    (the 4DS-e release), "~" where the plot was read roughly."""
    from fourds.report.paper import PAPER

    order = ("depth", "pose", "tracking", "boxes", "classification")
    cells = [
        f"{'~' if '4B' in PAPER[task].approximate else ''}{PAPER[task].values['4B']:g}"
        for task in order
    ]
    assert f"| {' | '.join(cells)} |" in page("docs/official-checkpoints.md")
