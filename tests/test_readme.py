"""Every bash block of README.md and of the pages of docs/ is either run as written by the test
RUN_BY names, or marked on its page as not run by the tests (its first line `# not run by the
tests: <why>`): then it is checked for bash syntax, and every params override it passes composes
into valid params. Quoted outputs follow a block a test runs; links between pages resolve."""

from __future__ import annotations

import ast
import re
import shlex
import subprocess

import pytest
import yaml
from dvc.utils.hydra import get_hydra_sweeps

from fourds import layout
from fourds.cli import build_parser, main
from fourds.report.glance import STUDIES, front_page, header, rows
from fourds.report.lineage import dvc_md5
from fourds.report.summary import sentence
from fourds.shipped import results_files
from tests.conftest import REPO_ROOT, command_lines, doc_blocks, doc_pages, page_of

MARKER = "# not run by the tests: "

# (page, heading, bash block under it, from 0) -> the test that runs that block as written
RUN_BY = {
    ("README.md", "Quick start", 1): "tests/test_front_door.py::"
    "test_the_readme_answer_in_a_fresh_clone_is_the_pinned_study_s",
    ("README.md", "Quick start", 2): "tests/test_front_door.py::"
    "test_the_plots_draw_from_git_in_a_fresh_clone",
    ("README.md", "Model zoo", 0): "tests/test_cli.py::"
    "test_the_readme_zoo_runs_as_written_and_prints_what_it_shows",
    ("docs/reproducibility.md", "Pinned results", 0): "tests/test_pinned_results.py::"
    "test_a_fresh_clone_regenerates_the_pinned_metrics_exactly",
    ("docs/reproducibility.md", "The reference study", 1): "tests/test_reference_study.py::"
    "test_the_readme_regenerates_a_readout_from_the_shipped_weights",
    ("docs/pipeline.md", "What comes out, and where", 0): "tests/test_pipeline.py::"
    "test_the_commands_that_look_at_results_run_as_written",
    ("docs/pipeline.md", "Ladders and params", 1): "tests/test_front_door.py::"
    "test_the_paper_ladder_composes_and_lists_its_pretrain_stages_in_a_fresh_clone",
    ("docs/pipeline.md", "Sweeps", 0): "tests/test_pipeline.py::"
    "test_a_queued_sweep_runs_in_the_background_and_exp_show_compares_it",
    ("docs/getting-started.md", "A first run, in minutes", 0): "tests/test_pipeline.py::smoke_repo",
    ("docs/pipeline.md", "Auditing a result", 0): "tests/test_pipeline.py::"
    "test_the_auditing_walkthrough_runs_as_written",
    ("docs/benchmarks.md", "Classification on Something-Something v2 and Kinetics", 0): "tests/"
    "evaluate/test_classification_readout.py::"
    "test_the_doc_commands_train_and_score_on_both_benchmarks",
    ("docs/benchmarks.md", "Scoring an encoder on a benchmark", 0): "tests/test_scoring_recipe.py::"
    "test_a_fourds_checkpoint_is_scored_on_a_benchmark_per_task_as_written",
    ("docs/benchmarks.md", "Scoring an encoder on a benchmark", 1): "tests/test_scoring_recipe.py::"
    "test_an_official_release_is_scored_on_a_benchmark_as_written",
    ("docs/benchmarks.md", "Scoring an encoder on Perception Test and Waymo Open", 0): "tests/"
    "test_published_tracking_scoring.py::"
    "test_a_fourds_checkpoint_is_scored_on_both_published_benchmarks",
    ("docs/benchmarks.md", "Scoring an encoder on Perception Test and Waymo Open", 1): "tests/"
    "test_published_tracking_scoring.py::"
    "test_an_official_release_is_scored_on_both_published_benchmarks",
    ("docs/official-checkpoints.md", "Official 4DS checkpoints", 0): "tests/"
    "test_official_recipe.py::test_the_official_checkpoint_recipe_runs_as_written",
    ("docs/planning.md", "Planning a run", 0): "tests/test_plan.py::"
    "test_the_readme_plan_runs_as_written",
    ("docs/pretraining.md", "Submitting the stage yourself with sbatch", 1): "tests/train/"
    "test_sbatch.py::test_the_doc_sbatch_commands_run_the_stage_command",
    ("docs/gpu-study.md", "The GPU study", 1): "tests/test_gpu_study.py::"
    "test_the_gpu_study_script_runs_end_to_end_on_the_cpu",
    ("docs/gpu-study.md", "On a bare machine", 0): "tests/test_gpu_study.py::"
    "test_the_gpu_study_script_runs_end_to_end_on_the_cpu",
}
# The languages a fenced block may have: bash (commands), none (what the bash block before it
# prints), and text shown as it is.
LANGUAGES = {"bash", "", "text", "bibtex"}


def block_id(block: tuple[str, str, int]) -> str:
    """A test id for a block: its page, heading and number."""
    return f"{block[0]}: {block[1]} {block[2]}"


def bash_blocks() -> dict[tuple[str, str, int], str]:
    """Every bash block of README.md and docs/*.md: (page, heading, its number under that
    heading) -> its text."""
    blocks = {}
    for block in doc_blocks():
        if block.language == "bash":
            number = sum(key[:2] == (block.page, block.section) for key in blocks)
            blocks[block.page, block.section, number] = block.text
    return blocks


def marked() -> dict[tuple[str, str, int], str]:
    """The bash blocks the pages mark as not run by the tests."""
    return {key: text for key, text in bash_blocks().items() if text.startswith(MARKER)}


def blocks_run_by(test: str) -> set[tuple[str, str, int]]:
    """The (page, heading, block) triples whose commands the test `file::function` reads with
    doc_commands: the heading a string or a module-level string constant, the page the one
    named (`page=`) or else the one page with that heading."""
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
            named = {keyword.arg: value(keyword.value) for keyword in call.keywords}
            number = block[0] if block else named.get("block", 0)
            found.add((named.get("page") or page_of(section), section, number))
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


def test_every_page_is_read_and_every_block_has_a_known_language():
    """The pages checked are README.md and all of docs/*.md; a block in another shell dialect
    (sh, console, shell) would escape the checks above."""
    pages = doc_pages()
    assert "README.md" in pages and "docs/getting-started.md" in pages
    for block in doc_blocks():
        assert block.language in LANGUAGES, (block.page, block.section, block.language)


def test_the_pages_stay_short():
    """The docs pages (the study logs aside) together at most 975 lines, about half what they
    were (1,884; 950 until the world levels' section), and no table cell over 300 characters:
    a page a newcomer reads through."""
    pages = [page for page in doc_pages() if page.startswith("docs/")]
    lines = {page: len((REPO_ROOT / page).read_text().splitlines()) for page in pages}
    assert sum(lines.values()) <= 975, lines
    for page in ["README.md", *pages]:
        for row in (REPO_ROOT / page).read_text().splitlines():
            if row.startswith("|"):
                assert max(len(cell.strip()) for cell in row.split("|")) <= 300, (page, row)


def test_every_quoted_output_follows_a_block_a_test_runs():
    """A fenced block with no language is what the bash block before it prints: that block is
    in RUN_BY, and its test compares the output with the quote (other text is tagged `text`)."""
    run = {}
    for page, section, number in RUN_BY:
        run.setdefault((page, section), []).append(bash_blocks()[page, section, number])
    for page in doc_pages():
        blocks = doc_blocks(page)
        for before, block in zip(blocks, blocks[1:], strict=False):
            if block.language == "":
                assert before.language == "bash", (page, block.section)
                assert before.text in run.get((page, block.section), []), (page, block.section)


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


def test_every_experiments_view_the_pages_show_fits_a_terminal():
    """`dvc exp show` lists every param and metric (over a thousand columns): the pages show
    `fourds experiments` (tests/test_pipeline.py runs it on two experiments and checks it fits
    160 columns), and any `dvc exp show` keeps to the columns it names."""
    lines = [
        line
        for block in doc_blocks()
        if block.language == "bash"
        for line in command_lines(block.text)
    ]
    assert any(line.startswith("fourds experiments") for line in lines)
    for line in lines:
        if line.startswith("dvc exp show"):
            assert {"--drop", "--keep"} & set(line.split()), line


def test_every_dag_the_pages_show_fits_a_terminal():
    """Plain `dvc dag` draws every stage side by side (over a thousand columns on the default
    study): the pages show `dvc dag --md` (a line per stage and per edge) or `dvc dag <stage>`
    (that stage's inputs; tests/test_pipeline.py runs both and checks their width)."""
    for block in doc_blocks():
        for line in command_lines(block.text) if block.language == "bash" else []:
            words = line.split()
            if words[:2] == ["dvc", "dag"]:
                target = [word for word in words[2:] if not word.startswith("-")]
                assert ("--md" in words or target) and "--full" not in words, line


def test_every_plots_command_the_pages_show_follows_its_template_step():
    """`dvc plots show` and `dvc plots diff` draw with reports/dvc_plots.html (.dvc/config),
    which a clone has only once `python -m fourds.report.offline` wrote it (DVC stops without:
    "HTML template has to contain '{plot_divs}'"): a block that shows either shows that step
    before it, so that it runs as written in a fresh clone."""
    for block in doc_blocks():
        lines = command_lines(block.text) if block.language == "bash" else []
        for at, line in enumerate(lines):
            if line.startswith(("dvc plots show", "dvc plots diff")):
                step = [before for before in lines[:at] if "fourds.report.offline" in before]
                assert step, (block.page, block.section, line)


@pytest.mark.parametrize("page", doc_pages())
def test_links_between_pages_resolve(page):
    """Every relative link of a page names a file of the repository, and its #anchor a heading
    of that page (GitHub's anchors: lower case, punctuation dropped, spaces as hyphens)."""
    text = (REPO_ROOT / page).read_text()
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if re.match(r"[a-z]+:", target):
            assert target.startswith("https://") or target.startswith("http://"), target
            continue
        path, _, anchor = target.partition("#")
        linked = (REPO_ROOT / page).parent / path if path else REPO_ROOT / page
        assert linked.exists(), f"{page}: {target}"
        if anchor:
            assert anchor in anchors(linked.read_text()), f"{page}: {target}"


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a markdown page."""
    prose = re.sub(r"```.*?```", "", markdown, flags=re.S)
    headings = re.findall(r"^#+ (.+)$", prose, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_the_readme_links_every_page_of_docs_and_stays_short():
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for page in doc_pages()[1:]:
        assert f"]({page})" in readme, f"the README's index does not link {page}"
    assert not re.search(r"\b[0-9a-f]{7,40}\b", re.sub(r"```.*?```", "", readme, flags=re.S))
    for link in (
        "https://arxiv.org/abs/2412.15212",
        "https://github.com/google-deepmind/representations4d",
    ):
        assert link in readme


@pytest.mark.parametrize("study", STUDIES, ids=lambda study: study.name)
def test_the_readme_result_tables_are_the_pinned_results_as_the_report_judges_them(study):
    """README, "Results at a glance": each study's table and the sentence under it are the
    ones fourds.report.glance writes from the readouts' pinned per-clip results (those dvc.lock
    pins) with the report's judging. A re-pin fails here with each cell to update."""
    lock_file = "dvc.lock" if study.runs.name == "runs" else f"{study.runs}/dvc.lock"
    lock = yaml.safe_load((REPO_ROOT / lock_file).read_text())
    pinned = {
        out["path"]: out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
    }
    for relative in sorted(results_files(REPO_ROOT / study.runs)):
        stage = layout.stage_at(relative)
        if stage is None or stage.kind != layout.READOUT:
            continue
        path = REPO_ROOT / study.runs / relative
        if stage.task is None:  # a folder of a file per task: dvc.lock pins the folder's hash
            path, relative = path.parent, relative.parent
        assert pinned.get(f"runs/{relative.as_posix()}") == dvc_md5(path), (
            f"{path}: not the results dvc.lock pins"
        )
    shown, page = readme_table(header(study)), front_page(study, REPO_ROOT)
    expected = rows(study, page)
    stale = [
        f"row {row[0]!r}, column {column!r}: the README says {cell}, the results {want}"
        for row, wanted in zip(shown, expected, strict=True)
        for column, cell, want in zip(header(study), row, wanted, strict=True)
        if cell != want
    ]
    assert not stale, f"README, {study.name} table (python -m fourds.report.glance):\n" + (
        "\n".join(stale)
    )
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    below = lines[lines.index("| " + " | ".join(header(study)) + " |") + len(expected) + 3]
    assert below == sentence(page), f"README, {study.name}: the sentence under its table"


def readme_table(columns: list[str]) -> list[list[str]]:
    """The rows of the README table whose header is `columns`, cell by cell."""
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    start = lines.index("| " + " | ".join(columns) + " |")
    table = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return table


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
