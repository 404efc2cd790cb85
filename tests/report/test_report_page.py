"""The rendered report: it opens offline, and every number links to its stage's lineage (the
stage, its run.yaml, its dvc.lock digests), on a finished run of the default ladder whose
metrics are the pinned ones (runs/*/metrics.json, a readout's runs/readout/*/metrics/<task>.json)
and whose other files are made up."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import yaml

from fourds import layout
from fourds.config import load_params
from fourds.evaluate.readout_files import write_clip_values
from fourds.records import write_run_record
from fourds.report.lineage import READ, dvc_md5, stage_dirs, stage_name
from fourds.report.offline import external_loads
from fourds.report.paper import PAPER
from fourds.report.summary import listing
from fourds.stages import report
from tests.conftest import REPO_ROOT, sh

CLIPS = 96


def write_picture(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, np.random.default_rng(0).uniform(size=(8, 8, 3)))


def write_clips(path: Path, metrics: dict, rng: np.random.Generator) -> None:
    """A task's clips CSV around its pinned headline and its baseline's (0/1 for accuracies)."""
    headline = metrics["headline"]
    values = {}
    for name, mean in (("readout", metrics[headline]), ("baseline", metrics["baseline"][headline])):
        if headline.startswith("top"):
            values[name] = (rng.uniform(size=CLIPS) < mean).astype(float)
        else:
            values[name] = np.abs(mean * (1 + 0.2 * rng.standard_normal(CLIPS)))
    clips = {headline: values["readout"], "weight": np.ones(CLIPS)}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_clip_values(path, [clips], {headline: values["baseline"]}, headline)


def finished_run(root: Path, scales: list[str] | None = None) -> Path:
    """runs/ of every stage the report reads, with the pinned metrics of the default ladder (of
    its `scales` alone, where given)."""
    params_path = root / "params.yaml"
    shutil.copy2(REPO_ROOT / "params.yaml", params_path)
    if scales:
        raw = yaml.safe_load(params_path.read_text())
        raw["ladder"]["scales"] = scales
        params_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(params_path)
    runs, rng = root / "runs", np.random.default_rng(0)
    scales, tasks = params.ladder.scales, params.readout.tasks
    for folder in stage_dirs(runs, scales, params.readout.regimes):
        folder.mkdir(parents=True)
        stage = layout.Stage.named(stage_name(folder))
        kind = stage.kind
        if kind == "readout":  # every task's files, read out together
            for task in tasks:
                pinned = layout.ReadoutFiles.of(stage.scale, task, stage.regime).at(
                    REPO_ROOT / "runs"
                )
                files = layout.ReadoutFiles.inside(folder, task)
                files.metrics.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(pinned.metrics, files.metrics)
                write_clips(files.clips, json.loads(pinned.metrics.read_text()), rng)
                write_picture(files.examples / f"{task}.png")
        else:
            pinned = REPO_ROOT / folder.relative_to(root) / "metrics.json"
            shutil.copy2(pinned, folder / "metrics.json")
        if kind == "pretrain":
            (folder / "loss.csv").write_text("step,loss\n10,0.5\n20,0.2\n30,0.1\n")
        if kind == "fidelity":
            write_picture(folder / "examples/reconstructions.png")
        write_run_record(folder, stage_name(folder), params_path, [], "cpu")
    shutil.copy2(REPO_ROOT / "data.dvc", root / "data.dvc")
    return runs


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """A finished run with the report's notebook, and a copy of it in another folder without
    the stages' execution records (DVC restores outputs without them): (root, copy)."""
    root = tmp_path_factory.mktemp("finished")
    finished_run(root)
    (root / "reports").mkdir()
    shutil.copy2(REPO_ROOT / "reports/scaling.ipynb", root / "reports/scaling.ipynb")
    copy = tmp_path_factory.mktemp("elsewhere") / "second"
    shutil.copytree(root, copy)
    for record in copy.rglob("execution.yaml"):
        record.unlink()
    return root, copy


@pytest.fixture(scope="module")
def rendered(finished):
    """The report stage run on the finished run as dvc.yaml runs it (from the repository root,
    relative paths): (root, its HTML)."""
    root, _ = finished
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(root)
        params = load_params("params.yaml")
        html = report.run(
            params, "reports/scaling.ipynb", "runs", "data.dvc", "reports/out", "params.yaml"
        )
    return root, (root / html).read_text()


@pytest.mark.slow
def test_the_report_of_one_scale_says_there_is_no_scaling_to_show(tmp_path):
    """A ladder of one scale (`ladder.scales=[cpu_l]`): the report renders, and says why it
    compares no scales and fits no law."""
    runs = finished_run(tmp_path, scales=["cpu_l"])
    params = load_params(tmp_path / "params.yaml")
    notebook = REPO_ROOT / "reports/scaling.ipynb"
    out = tmp_path / "reports/out"
    html = report.run(params, notebook, runs, tmp_path / "data.dvc", out, tmp_path / "params.yaml")
    text = Path(html).read_text()
    assert "<strong>With one scale (cpu_l) there is no scale comparison and no scaling fit" in text
    assert "No fit: a power law needs two or more scales, and the study has one." in text
    assert "Tables: each scale against the next" not in text and (out / "run.yaml").is_file()


class _Links(HTMLParser):
    """Every href and id of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(values["href"])
        if values.get("id"):
            self.ids.add(values["id"])


@pytest.mark.slow
def test_the_report_loads_nothing_from_a_network(rendered):
    _, html = rendered
    assert external_loads(html) == []
    assert "cdnjs" not in html and "<script src" not in html


@pytest.mark.slow
def test_every_link_of_the_report_lands(rendered):
    root, html = rendered
    links = _Links()
    links.feed(html)
    inside = [href[1:] for href in links.hrefs if href.startswith("#")]
    files = [href for href in links.hrefs if not href.startswith(("#", "http"))]
    assert inside and files
    assert set(inside) <= links.ids  # every number's link has its lineage row
    for href in files:  # every run record, relative to the report
        assert (root / "reports/out" / href).resolve().is_file(), href


@pytest.mark.slow
def test_every_readout_headline_links_to_its_stage_and_its_lineage_names_it_in_full(rendered):
    root, html = rendered
    params = load_params(root / "params.yaml")
    runs = root / "runs"
    for folder in stage_dirs(runs, params.ladder.scales, params.readout.regimes):
        stage = stage_name(folder)
        anchor = "lineage-" + stage.replace("@", "-")
        assert f'<span id="{anchor}"></span>' in html, stage
        record = folder.relative_to(root) / "run.yaml"
        assert f'<a href="../../{record}"><code>{record}</code></a>' in html
        assert f"<code>stages: {stage}</code>" in html  # its dvc.lock entry
        for name in READ[stage.split("@")[0]]:  # digests as dvc.lock records them, in full
            digest = dvc_md5(folder / name)  # a readout's metrics and clips: folders (".dir")
            assert f"<code>{name}</code> <code>{digest}</code>" in html, (stage, name)
        if stage.startswith("readout@"):
            assert html.count(f'href="#{anchor}"') >= 2, stage  # its numbers link to it
    # the front grid: each task's headline at each scale links to its pretrained readout, the
    # stage readout@<scale>-frozen that reads out every task of the scale
    grid = html[: html.index("How to read the rest")]
    for scale in params.ladder.scales:
        linked = grid.count(f'href="#lineage-readout-{scale}-frozen"><strong>')
        assert linked == len(params.readout.tasks), scale
    assert "data sha256" not in html and "params sha256" not in html


@pytest.mark.slow
def test_the_papers_numbers_cite_their_source(rendered):
    _, html = rendered
    text = html.replace("&quot;", '"')
    citation = 'Carreira et al. (2024), "Scaling 4D Representations", arXiv:2412.15212'
    assert f"Source of {listing(list(PAPER))}: {citation}, its scaling figure" in text
    assert "the figure's number in the paper was not recorded" in text.replace("&#39;", "'")


def written(root: Path) -> dict[str, bytes]:
    """Every file the report stage wrote under root/reports/out that DVC hashes."""
    out = root / "reports/out"
    return {
        str(path.relative_to(out)): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file() and path.name not in ("execution.yaml", ".fourds-output")
    }


@pytest.mark.slow
def test_the_report_repeats_byte_for_byte_in_another_folder_at_another_time(finished, rendered):
    """DVC hashes the report's outputs: a regeneration with the same results must write the
    same bytes wherever the clone lives, whenever and in whichever process it runs (no
    papermill timings, process ids or absolute paths), and whether or not the stages'
    execution records are there (DVC restores outputs without them)."""
    first, second = finished  # rendered in this process; the copy by `fourds report`
    command = ["fourds", "report", "--params", "params.yaml", "--notebook"]
    sh(*command, "reports/scaling.ipynb", "--runs", "runs", "--out", "reports/out", cwd=second)
    once, again = written(first), written(second)
    assert {"scaling.ipynb", "scaling.html", "run.yaml"} <= set(once)
    assert "dvc_plots.html" not in once  # the plots page's template is no stage's output
    assert sorted(again) == sorted(once)
    assert [name for name in once if again[name] != once[name]] == []
    assert str(first).encode() not in once["scaling.ipynb"]
