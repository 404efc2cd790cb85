"""Offline pages: `dvc plots show` and the report load nothing from a network."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
import yaml

from fourds.report import offline
from fourds.report.notebook import offline_html
from fourds.report.offline import PLOTS_TEMPLATE, external_loads, plots_template
from tests.conftest import REPO_ROOT, sh

# What DVC's own page loads from a CDN (dvc_render's VegaRenderer.SCRIPTS)
CDN_PAGE = """<html><head>
<script src="https://cdn.jsdelivr.net/npm/vega@5.20.2"></script>
<link rel="stylesheet" href="//fonts.example.org/a.css">
<style>@import url("https://fonts.example.org/b.css"); .x { background: url(data:,) }</style>
<script type="module">const m = (await import("https://cdn.example.org/m.mjs")).default;
const elk = "https://cdn.example.org/elk.esm.min.mjs";</script>
</head><body><a href="https://example.org">a link is not a load</a>
<img src="static/plot.png"><svg xmlns="http://www.w3.org/2000/svg"></svg>
<script>var spec = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json"};</script>
</body></html>"""


def test_external_loads_finds_what_a_browser_would_fetch_and_only_that():
    assert external_loads(CDN_PAGE) == [
        "https://cdn.jsdelivr.net/npm/vega@5.20.2",
        "//fonts.example.org/a.css",
        "https://fonts.example.org/b.css",
        "https://cdn.example.org/m.mjs",
        "https://cdn.example.org/elk.esm.min.mjs",
    ]


def report_plots(root: Path) -> list[dict]:
    """The report stage's plots in the dvc.yaml under `root`: [{path: properties}]."""
    return yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["report"]["plots"]


def plots_repo(root: Path) -> Path:
    """A git repository with this project's dvc.yaml, params.yaml, DVC config, plot template
    and plots page template, and the files its plots read: the report's plot tables, each
    scale's loss curve and each readout's clips/<task>.csv (a file per task in the folder its
    stage declares as a plot)."""
    for name in ("dvc.yaml", "params.yaml", ".dvc/config", ".dvc/plots/scaling.json"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, root / name)
    offline.main([str(root / PLOTS_TEMPLATE)])  # as the report stage writes it
    params = yaml.safe_load((root / "params.yaml").read_text())
    scales = params["ladder"]["scales"]
    for plot in report_plots(root):
        ((table, spec),) = plot.items()
        metric = spec["y"]
        rows = "".join(
            f"{scale},{regime},{10**k},{10**k * shift},{0.5 - k / 20},0.1,0.9\n"
            for k, scale in enumerate(scales, 3)
            for regime, shift in (("frozen", 1), ("random_init", 1.1))
        )
        (root / table).parent.mkdir(parents=True, exist_ok=True)
        (root / table).write_text(f"scale,regime,params,x,{metric},low,high\n{rows}")
    for scale in scales:
        curve = root / "runs/pretrain" / scale / "loss.csv"
        curve.parent.mkdir(parents=True)
        curve.write_text("step,loss,lr\n10,0.5,0.001\n20,0.3,0.001\n")
        for regime in params["readout"]["regimes"]:
            for task in params["readout"]["tasks"]:
                clips = root / "runs/readout" / f"{scale}-{regime}" / "clips" / f"{task}.csv"
                clips.parent.mkdir(parents=True, exist_ok=True)
                clips.write_text("clip,weight,loss\n0,1.0,0.5\n1,1.0,0.4\n")
    sh("git", "init", "-q", cwd=root)
    return root


@pytest.mark.slow
def test_the_dvc_plots_page_loads_nothing_from_a_network(tmp_path):
    repo = plots_repo(tmp_path)
    output = sh("dvc", "plots", "show", cwd=repo)
    assert "dvc_plots/index.html" in output
    page = (repo / "dvc_plots/index.html").read_text()
    assert external_loads(page) == []
    assert "cdn.jsdelivr.net" not in page and "<script src" not in page
    # every plot is on the page, drawn by the bundled vega-embed: the report's scaling plots,
    # each scale's training and held-out loss curves and each readout task's per-clip values.
    # A readout stage declares its clips/ folder as one plot, and DVC draws a plot per file in
    # it (id <scale>-<regime>_clips_<task>_csv): one per scale, task and regime (with the
    # folder empty or missing it would draw one placeholder per folder instead)
    plots = len(report_plots(repo))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    scales, readout = params["ladder"]["scales"], params["readout"]
    readouts = len(scales) * len(readout["tasks"]) * len(readout["regimes"])
    assert len(re.findall(r"vegaEmbed\('#", page)) == plots + 2 * len(scales) + readouts
    assert "window.vegaEmbed=" in page


def test_the_plots_page_keeps_dvcs_placeholders_but_its_scripts():
    page = plots_template()
    assert "{plot_divs}" in page and "{refresh_tag}" in page
    assert "{scripts}" not in page  # DVC adds its CDN scripts there
    assert external_loads(page) == []
    config = (REPO_ROOT / ".dvc/config").read_text()
    assert f"html_template = ../{PLOTS_TEMPLATE.as_posix()}" in config


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the bundle")
def test_the_bundled_script_defines_vega_embed_as_a_page_script(tmp_path):
    """The page's inline script runs as a classic script (no module syntax) and leaves
    vegaEmbed, which DVC's plots call, on window."""
    page = plots_template()
    (script,) = re.findall(r"<script>\n(.*?)\n    </script>", page, re.DOTALL)
    (tmp_path / "bundle.js").write_text(script)
    check = """
        const fs = require("fs"), vm = require("vm");
        const before = new Set(Object.getOwnPropertyNames(globalThis));
        globalThis.window = globalThis;  // a page's scripts share its window's globals
        vm.runInThisContext(fs.readFileSync(process.argv[1], "utf8"));
        const added = Object.getOwnPropertyNames(globalThis).filter(name => !before.has(name));
        console.log(JSON.stringify({embed: typeof vegaEmbed, added}));
    """
    result = subprocess.run(
        ["node", "-e", check, str(tmp_path / "bundle.js")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout)
    assert found["embed"] == "function"
    # the bundle's own top-level names stay in its function: the page's scripts can declare
    # theirs (DVC's `var spec`) without a clash
    assert set(found["added"]) <= {"window", "vegaEmbed", "vega", "vegaLite"}


def test_the_report_page_drops_nbconverts_cdn_scripts_and_refuses_a_remote_one():
    plain = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# a report")])
    html = offline_html(plain)
    assert external_loads(html) == [] and "a report" in html
    assert "jp-Notebook" in html  # still nbconvert's lab page, its styles inline
    remote = nbformat.v4.new_markdown_cell('<script src="https://cdn.example.org/x.js"></script>')
    with pytest.raises(RuntimeError, match="would load https://cdn.example.org/x.js"):
        offline_html(nbformat.v4.new_notebook(cells=[remote]))
