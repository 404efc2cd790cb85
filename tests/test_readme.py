"""Every bash block of README.md and of the pages of docs/ is either run as written by the test
RUN_BY names, or marked on its page as not run by the tests (its first line `# not run by the
tests: <why>`): then it is checked for bash syntax, and every params override it passes composes
into valid params. Quoted outputs follow a block a test runs; links between pages resolve."""

from __future__ import annotations

import ast
import shlex
import subprocess

import pytest
from dvc.utils.hydra import get_hydra_sweeps

from fourds.cli import build_parser, main
from tests.conftest import REPO_ROOT, command_lines, doc_blocks

MARKER = "# not run by the tests: "

# (README heading, bash block under it, from 0) -> the test that runs that block as written
RUN_BY = {
    ("Pinned results", 0): "tests/test_pinned_results.py::"
    "test_a_fresh_clone_regenerates_the_pinned_metrics_exactly",
    ("What comes out, and where", 0): "tests/test_pipeline.py::"
    "test_the_commands_that_look_at_results_run_as_written",
    ("Ladders and params", 1): "tests/test_pipeline.py::"
    "test_paper_ladder_composes_and_dry_run_lists_the_pretraining_launches",
    ("Sweeps", 0): "tests/test_pipeline.py::"
    "test_a_queued_sweep_runs_in_the_background_and_exp_show_compares_it",
    ("Auditing a result", 0): "tests/test_pipeline.py::"
    "test_the_auditing_walkthrough_runs_as_written",
    ("Classification on Something-Something v2 and Kinetics", 0): "tests/evaluate/"
    "test_classification_readout.py::test_the_doc_commands_train_and_score_on_both_benchmarks",
    ("Official 4DS checkpoints", 0): "tests/test_official_recipe.py::"
    "test_the_official_checkpoint_recipe_runs_as_written",
    ("Scoring an encoder on a benchmark", 0): "tests/test_scoring_recipe.py::"
    "test_a_fourds_checkpoint_is_scored_on_a_benchmark_per_task_as_written",
    ("Scoring an encoder on a benchmark", 1): "tests/test_scoring_recipe.py::"
    "test_an_official_release_is_scored_on_a_benchmark_as_written",
    ("Planning a run", 0): "tests/test_plan.py::test_the_readme_plan_runs_as_written",
    ("The reference study", 1): "tests/test_reference_study.py::"
    "test_the_readme_regenerates_a_readout_from_the_shipped_weights",
    ("The model zoo", 0): "tests/test_cli.py::"
    "test_the_readme_zoo_runs_as_written_and_prints_what_it_shows",
}


def block_id(block: tuple[str, int]) -> str:
    """A test id for a README block: its heading and number."""
    return f"{block[0]} {block[1]}"


def bash_blocks() -> dict[tuple[str, int], str]:
    """Every bash block of the README: (heading, its number under that heading) -> its text."""
    blocks = {}
    for block in doc_blocks():
        if block.language == "bash":
            number = sum(section == block.section for section, _ in blocks)
            blocks[block.section, number] = block.text
    return blocks


def marked() -> dict[tuple[str, int], str]:
    """The bash blocks the README marks as not run by the tests."""
    return {key: text for key, text in bash_blocks().items() if text.startswith(MARKER)}


def blocks_run_by(test: str) -> set[tuple[str, int]]:
    """The (heading, block) pairs whose commands the test `file::function` reads with
    doc_commands, the heading a string or a module-level string constant."""
    path, function = test.split("::")
    tree = ast.parse((REPO_ROOT / path).read_text())
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    (definition,) = [
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == function
    ]

    def value(node: ast.expr):
        return constants[node.id] if isinstance(node, ast.Name) else ast.literal_eval(node)

    found = set()
    for call in ast.walk(definition):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "doc_commands":
            section, *block = [value(argument) for argument in call.args]
            block += [value(keyword.value) for keyword in call.keywords]
            found.add((section, *(block or [0])))
    return found


def params_overrides(command: str) -> list[list[str]]:
    """The Hydra overrides of each params.yaml a `dvc exp run` or `fourds params` command line
    composes (a sweep expanded as DVC expands it); none for any other command."""
    words = shlex.split(command)
    if words[:3] == ["dvc", "exp", "run"]:
        pairs = zip(words, words[1:], strict=False)
        overrides = [value for flag, value in pairs if flag in ("-S", "--set-param")]
    elif words[:2] == ["fourds", "params"]:
        overrides = build_parser().parse_args(words[1:]).overrides
    else:
        return []
    return [sweep["params.yaml"] for sweep in get_hydra_sweeps({"params.yaml": overrides})]


def test_every_bash_block_is_run_by_a_test_or_marked():
    blocks = bash_blocks()
    assert set(RUN_BY) <= set(blocks), set(RUN_BY) - set(blocks)  # no stale entry
    for key, text in blocks.items():
        assert (key in RUN_BY) != text.startswith(MARKER), f"{key}: in RUN_BY or marked, not both"
        assert MARKER not in text.partition("\n")[2], key  # the marker is the first line


def test_every_quoted_output_follows_a_block_a_test_runs():
    """A fenced block with no language is what the bash block before it prints: that block is
    in RUN_BY, and its test compares the output with the quote (other text is tagged `text`)."""
    run = {key[0]: [] for key in RUN_BY}
    for section, number in RUN_BY:
        run[section].append(bash_blocks()[section, number])
    blocks = doc_blocks()
    for before, block in zip(blocks, blocks[1:], strict=False):
        if block.language == "":
            assert before.language == "bash", block.section
            assert before.text in run.get(block.section, []), block.section


@pytest.mark.parametrize("block", sorted(RUN_BY), ids=block_id)
def test_the_named_test_reads_its_block(block):
    assert block in blocks_run_by(RUN_BY[block])


@pytest.mark.parametrize("block", sorted(marked()), ids=block_id)
def test_a_marked_block_says_why_is_bash_and_its_params_compose(block, tmp_path):
    text = marked()[block]
    assert text.splitlines()[0].removeprefix(MARKER).strip()  # the reason
    syntax = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    out = ["--experiments", str(REPO_ROOT / "experiments"), "--out", str(tmp_path / "params.yaml")]
    for command in command_lines(text):
        for overrides in params_overrides(command):
            assert main(["params", *overrides, *out]) == 0, (command, overrides)


def test_overrides_are_read_as_dvc_and_fourds_read_them():
    command = "dvc exp run --queue -S ladder=smoke -S 'mae=mae_st,4ds' -S a.b=[1,2]"
    assert params_overrides(command) == [
        ["ladder=smoke", "mae=mae_st", "a.b=[1,2]"],
        ["ladder=smoke", "mae=4ds", "a.b=[1,2]"],
    ]
    assert params_overrides("fourds params ladder=4ds x.y=1 --out 4ds.yaml") == [
        ["ladder=4ds", "x.y=1"]
    ]
    assert params_overrides("dvc exp run") == [[]]  # the default composition
    assert params_overrides("dvc repro --pull") == []
