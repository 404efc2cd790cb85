"""Measured numbers the pages quote are their result files' numbers: a new measurement that
changes one fails here until the page says it (the GPU step: benchmarks/results/gpu/summary.json;
the GPU study: benchmarks/results/gpu-study-3/ and the results it shipped, reports/gpu-reference;
the results tables are checked by tests/test_readme.py)."""

from __future__ import annotations

import json
import re

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


THIRD = REPO_ROOT / "benchmarks/results/gpu-study-3"  # the run shipped in reports/gpu-reference
RATE = json.loads((THIRD / "call-1/world_rate.json").read_text())["results"]
STUDY_SECONDS = sum(
    json.loads((THIRD / f"call-{n}/summary.json").read_text())["results"]["wall_seconds"]
    for n in (1, 2)
)
SHIPPED = REPO_ROOT / "reports/gpu-reference"
STUDY_PARAMS = yaml.safe_load((SHIPPED / "params.yaml").read_text())
STUDY_CLIPS = STUDY_PARAMS["pretrain"]["steps"] * STUDY_PARAMS["pretrain"]["batch_size"]
STUDY_LOSSES = " / ".join(
    f"{json.loads((SHIPPED / f'pretrain/{scale}/metrics.json').read_text())['loss']:.4g}"
    for scale in STUDY_PARAMS["ladder"]["scales"]
)
MAIN_JOB = json.loads((REPO_ROOT / "benchmarks/results/main_job_avx2.json").read_text())
MAIN_STAGES = MAIN_JOB["results"]["stage_wall_seconds"]
MAIN_JOB_512 = json.loads((REPO_ROOT / "benchmarks/results/main_job_avx512.json").read_text())
MAIN_STAGES_512 = MAIN_JOB_512["results"]["stage_wall_seconds"]
SUITE = json.loads((REPO_ROOT / "benchmarks/results/suite.json").read_text())


def minutes(result: dict) -> str:
    """A timed run's total (a main job, the suite) as the pages round it: whole minutes."""
    return f"{result['results']['total_seconds'] / 60:.0f}"


def readout_stages(stages: dict[str, float]) -> str:
    """The readout stages' seconds together, as the performance page writes them."""
    return f"{sum(s for n, s in stages.items() if n.startswith('readout@')):,.0f} s together"


L_MODEL, B_MODEL = case("4ds_l", "model", True), case("4ds_b", "model", True)
L_STEP, B_STEP = case("4ds_l", "step", True), case("4ds_b", "step", True)
L_EAGER, B_EAGER = case("4ds_l", "model", False), case("4ds_b", "model", False)
QUOTES = {
    "README.md": [
        f"4DS-L at {share(L_MODEL)}% of the chip's matrix rate",
        f"about {minutes(MAIN_JOB_512)} minutes on a 2-core CPU with AVX-512, about "
        f"{minutes(MAIN_JOB)} without it",
    ],
    "docs/getting-started.md": [
        f"about {minutes(MAIN_JOB_512)} minutes on a 2-core CPU with AVX-512, about "
        f"{minutes(MAIN_JOB)} without (tests/test_pinned"
    ],
    "docs/performance.md": [
        f"(commit {SUMMARY['commit'][:7]})",
        f"a measured {SUMMARY['gemm_tflops']:.0f} TFLOP/s bf16 ceiling",
        f"4DS-L at 128 clips a GPU trains at {share(L_MODEL)}% of it",
        f"({L_MODEL['ms']:.1f} ms a step)",
        f"4DS-B at {share(B_MODEL)}% ({B_MODEL['ms']:.1f} ms",
        f"Eager, the same steps take {L_EAGER['ms']:.0f} and {B_EAGER['ms']:.0f} ms",
        # the main job with and without AVX-512 (benchmarks/main_job.py)
        *[
            f"{job['results']['total_seconds']:.0f} s alone at {job['git']['commit'][:7]} "
            f"(about {minutes(job)} minutes"
            for job in (MAIN_JOB_512, MAIN_JOB)
        ],
        *[
            f"pretraining {stages['pretrain@cpu_s']:.0f} s (`cpu_s`) and "
            f"{stages['pretrain@cpu_l']:.0f} s (`cpu_l`)"
            for stages in (MAIN_STAGES_512, MAIN_STAGES)
        ],
        f"({readout_stages(MAIN_STAGES_512)})",
        f"({readout_stages(MAIN_STAGES)})",
        # the whole suite (benchmarks/suite.py)
        f"about {minutes(SUITE)} minutes ({SUITE['results']['total_seconds']:.0f} s alone at "
        f"{SUITE['git']['commit'][:7]}",
    ],
    "docs/gpu-study.md": [
        f"by the two commands above: {STUDY_SECONDS:.0f} s",
        f"rendering {RATE['render_clips_per_s']:,.0f} clips/s at gpu_l",
        f"{STUDY_CLIPS:,} fresh clips a scale",
        f"the MAE loss is the same at every scale ({STUDY_LOSSES})",
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


def test_the_performance_page_calls_a_main_job_silent_only_where_its_comparison_was():
    """The main job's row says `fourds compare HEAD` was silent for a kernel path only where
    that run's result file records it so (nothing printed, status 0)."""
    text = (REPO_ROOT / "docs/performance.md").read_text()
    (row,) = [line for line in text.splitlines() if line.startswith("| `dvc repro --pull`")]
    cells = row.strip(" |").split(" | ")[1:]
    for job, cell in zip((MAIN_JOB_512, MAIN_JOB), cells, strict=True):
        assert job["git"]["commit"][:7] in cell, cell
        assert ("`fourds compare HEAD` silent" in cell) == job["results"]["compare_silent"], cell


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


def test_the_gpu_study_page_quotes_the_shipped_studys_answer(capsys):
    """The verdicts docs/gpu-study.md gives are what `fourds answer` says of reports/gpu-reference
    (the command the page shows)."""
    from fourds.cli import main

    command = (
        "fourds answer --params reports/gpu-reference/params.yaml --runs reports/gpu-reference"
    )
    assert f"`{command}`" in page("docs/gpu-study.md")
    main(command.split()[1:])
    answer = " ".join(capsys.readouterr().out.split())
    assert "pretraining beats the random-network control on 1 of 5 tasks (depth)" in answer
    assert "gpu_l beats gpu_s on 0 of 5 tasks and loses on 3 (pose, tracking, classification)" in (
        answer
    )
    assert "gpu_l beats gpu_s on 0 of 5 tasks and loses on 3 (pose, tracking, classification)" in (
        page("docs/gpu-study.md")
    )
    assert "whether the final training MAE loss falls with scale cannot be told" in answer
    assert "pretraining helps depth; no gain from scale yet" in page("README.md")  # status row


def test_getting_started_quotes_the_first_runs_measured_time():
    """docs/getting-started.md's first run: its seconds are benchmarks/first_run.py's, within
    the five minutes the page promises."""
    result = json.loads((REPO_ROOT / "benchmarks/results/first_run.json").read_text())
    seconds = result["results"]["total_seconds"]
    assert result["results"]["within_target"] and seconds <= 300
    assert not result["git"]["dirty"], "measure the first run at a clean commit"
    text = page("docs/getting-started.md")
    assert f"{round(seconds)} s from `dvc pull` to the answer in a fresh clone" in text


def test_planning_quotes_how_long_the_simulated_plan_takes():
    """docs/planning.md: `fourds plan --simulate`'s seconds on the 4ds ladder and the longest it
    goes without a line are benchmarks/plan_simulate.py's, measured at a clean commit."""
    result = json.loads((REPO_ROOT / "benchmarks/results/plan_simulate.json").read_text())
    assert not result["git"]["dirty"], "time the plan at a clean commit"
    measured = result["results"]
    assert measured["progress"] and measured["first_line_seconds"] < 30
    text = " ".join(page("docs/planning.md").split())
    seconds, silence = round(measured["seconds"]), round(measured["longest_silence_seconds"])
    quoted = f"({seconds} s for the 4ds ladder on a 2-core CPU, progress lines at most {silence} s"
    assert quoted in text
