"""What a newcomer meets first, each fixed with a test: `fourds answer` in a fresh clone, the
README's answer excerpt, `fourds params` without --out, the errors for missing weights and
benchmarks, the license and the citation."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from fourds.cli import main
from fourds.config.tasks import TASKS
from tests.conftest import REPO_ROOT, doc_blocks, doc_commands, one_error_line, run_fourds, sh

REFERENCE = "reports/reference"


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A `git clone` of this repository's commit, as a newcomer makes one."""
    path = tmp_path_factory.mktemp("clone") / "fourds"
    sh("git", "clone", "-q", str(REPO_ROOT), str(path), cwd=path.parent)
    return path


@pytest.fixture
def fresh_clone(clone, monkeypatch):
    """The clone, as the working directory."""
    monkeypatch.chdir(clone)
    return clone


def excerpt_matches(quote: str, output: str) -> bool:
    """Whether the quote's lines are lines of the output, in order, a `...` line standing for
    any number of lines left out."""
    lines, at = output.splitlines(), 0
    for line in quote.splitlines():
        if line == "...":
            continue
        while at < len(lines) and lines[at] != line:
            at += 1
        if at == len(lines):
            return False
        at += 1
    return True


def test_the_readme_answer_in_a_fresh_clone_is_the_pinned_study_s(fresh_clone, capsys):
    """README, "Quick start", second block, in a `git clone`: before the default study has run,
    `fourds answer` answers from the pinned results git keeps and says so in its first line;
    the README's excerpt is what it prints. Without those results it answers from the shipped
    reference study, and says that instead."""
    (command,) = doc_commands("Quick start", 1, page="README.md")
    assert run_fourds(command) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert "pinned results git keeps" in first and "dvc repro --pull" in first
    assert len(first) <= 100 and "At the largest scale (cpu_l)" in out
    blocks = doc_blocks("README.md")
    (quote,) = [b.text for b in blocks if b.section == "Quick start" and b.language == ""]
    assert excerpt_matches(quote, out), quote
    assert not excerpt_matches("no such line\n", out)
    shutil.rmtree(fresh_clone / "runs/readout")  # no results: the shipped reference answers
    assert run_fourds(command) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "no results yet" in first and REFERENCE in first
    sh("git", "checkout", "runs", cwd=fresh_clone)


def test_the_plots_draw_from_git_in_a_fresh_clone(clone):
    """The README's plot commands (the same lines as docs/pipeline.md's), in a `git clone`
    before any run: the page's template, then `dvc plots show`, which draws every task's
    scaling plot from the pinned plot tables, first, and each scale's loss curves from git;
    nothing lands in a stage's outputs or where git would see it."""
    readme = doc_commands("Quick start", 2, page="README.md")
    pipeline = doc_commands("What comes out, and where", page="docs/pipeline.md")
    assert [line for line in pipeline if "report.offline" in line or "plots show" in line] == [
        line for line in pipeline if line in readme
    ]
    for line in readme:
        sh("bash", "-c", line, cwd=clone)
    page = (clone / "dvc_plots/index.html").read_text()
    scales = yaml.safe_load((clone / "params.yaml").read_text())["ladder"]["scales"]
    tasks = yaml.safe_load((clone / "params.yaml").read_text())["readout"]["tasks"]
    assert page.count("pretrained (frozen)") == len(tasks) * len(scales)  # a point per readout
    drawn = re.findall(r"vegaEmbed\('#([^']+)'", page)
    scaling = [i for i, plot in enumerate(drawn) if "plot_tables" in plot]
    assert scaling == list(range(len(TASKS))), drawn  # every task's scaling plot first
    for scale in scales:  # the loss curves have their points: both files are in git
        for curve, column in (("loss.csv", 1), ("heldout.csv", 2)):
            rows = (clone / "runs/pretrain" / scale / curve).read_text().splitlines()
            assert len(rows) > 2 and rows[-1].split(",")[column] in page, (scale, curve)
    assert not (clone / "reports/out/dvc_plots.html").exists()
    assert sh("git", "status", "--porcelain", cwd=clone) == ""  # nothing left for git to see


def test_the_paper_ladder_composes_and_lists_its_pretrain_stages_in_a_fresh_clone(clone):
    """docs/pipeline.md, "Ladders and params": the 4ds ladder composed into params.yaml, then its
    pretrain stages listed, in a `git clone` before any run (a dry run would need the corpus)."""
    params = clone / "params.yaml"
    pinned = params.read_text()
    compose, listing = doc_commands("Ladders and params", 1, page="docs/pipeline.md")
    try:
        sh("bash", "-c", compose, cwd=clone)
        stages = sh("bash", "-c", listing, cwd=clone).split()
    finally:
        params.write_text(pinned)
    scales = ["4ds_s", "4ds_b", "4ds_l", "4ds_h", "4ds_g", "4ds_e", "4ds_j"]
    assert stages == [f"pretrain@{scale}" for scale in scales]


def test_answer_without_results_says_in_one_line_what_to_run(fresh_clone, capsys):
    assert main(["answer", "--runs", "elsewhere"]) == 2
    error = one_error_line(capsys.readouterr().err, "answer")
    assert "dvc repro --pull" in error
    assert f"fourds answer --params {REFERENCE}/params.yaml --runs {REFERENCE}" in error


def test_params_without_out_keeps_the_pinned_params(tmp_path, monkeypatch, capsys):
    shutil.copytree(REPO_ROOT / "experiments", tmp_path / "experiments")
    shutil.copy2(REPO_ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    pinned = (tmp_path / "params.yaml").read_text()
    assert main(["params", "ladder=smoke"]) == 2
    error = one_error_line(capsys.readouterr().err, "params")
    assert "--out" in error and "git checkout params.yaml" in error
    assert (tmp_path / "params.yaml").read_text() == pinned  # left as it is
    assert main(["params"]) == 0  # the composition it already holds: nothing to do
    assert (tmp_path / "params.yaml").read_text() == pinned
    assert main(["params", "ladder=smoke", "--out", "params.yaml"]) == 0  # on purpose
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["ladder"]["name"] == "smoke"
    (tmp_path / "params.yaml").unlink()
    assert main(["params", "ladder=smoke"]) == 0  # no file yet: written
    assert (tmp_path / "params.yaml").is_file()


def test_a_missing_checkpoint_names_where_to_get_one(tmp_path, capsys):
    missing = tmp_path / "runs/pretrain/cpu_l/checkpoint.pt"
    code = main([
        "readout", "--params", str(REPO_ROOT / "params.yaml"), "--scale", "cpu_l",
        "--task", "depth", "--pretrained", str(missing), "--out", str(tmp_path / "out"),
    ])  # fmt: skip
    assert code == 2
    error = one_error_line(capsys.readouterr().err, "readout")
    assert error.startswith(f"fourds readout: error: {missing}: not found;")  # named once
    for where in (
        "dvc repro pretrain@",
        "dvc pull reports/reference/checkpoints.dvc",
        "docs/official-checkpoints.md",
    ):
        assert where in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("format", ["scannet", "tapvid", "realestate10k"])
def test_a_missing_benchmark_names_where_to_get_it(format, tmp_path):
    from fourds.config import SourceConfig
    from fourds.data.benchmarks import source_files

    source = SourceConfig(format, str(tmp_path / "train"), str(tmp_path / "t"), frame_stride=1)
    with pytest.raises(FileNotFoundError) as raised:
        source_files(source, tmp_path)
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'train'}: no such {format} benchmark")
    assert "docs/benchmarks.md" in message and "http" in message


def test_a_missing_official_checkpoint_names_the_release_links(tmp_path):
    from fourds.models.convert import ConvertError, open_checkpoint

    with pytest.raises(ConvertError, match="docs/official-checkpoints.md: https://storage"):
        open_checkpoint(tmp_path / "scaling4d_dist_b.npz")


def test_a_missing_converted_readout_names_the_release_that_has_one(tmp_path):
    from fourds.models.convert import load_readout
    from fourds.models.weights import WeightsError

    with pytest.raises(WeightsError, match="scaling4d_dist_b_depth.npz: docs/official-checkpoints"):
        load_readout(tmp_path / "4ds_b-readout.pt")


def test_the_license_is_apache_2_and_pyproject_says_so_in_spdx():
    license_text = (REPO_ROOT / "LICENSE").read_text()
    assert license_text.lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in license_text
    assert "Copyright 2026 The fourds authors" in license_text
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert 'license = "Apache-2.0"' in pyproject and 'license-files = ["LICENSE"]' in pyproject


def test_the_citation_names_the_paper_and_this_package():
    citation = yaml.safe_load((REPO_ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "Apache-2.0"
    assert citation["title"].startswith("fourds") and citation["type"] == "software"
    paper = citation["preferred-citation"]
    assert paper["title"] == "Scaling 4D Representations" and paper["year"] == 2024
    assert paper["authors"][0] == {"family-names": "Carreira", "given-names": "João"}
    assert "arXiv:2412.15212" in [identifier["value"] for identifier in paper["identifiers"]]
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert f'version = "{citation["version"]}"' in pyproject
