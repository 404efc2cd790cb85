"""Execute a parameterised notebook with papermill and export it to HTML that opens offline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbformat
import papermill
from jinja2 import DictLoader
from nbconvert import HTMLExporter

from fourds.atomic import atomic_path
from fourds.report.offline import OFFLINE_TEMPLATE, external_loads

TEMPLATE_NAME = "fourds_offline.html.j2"
RUN_METADATA = ("papermill", "execution")  # a cell's timings, by papermill and by nbclient
INJECTED = "injected-parameters"  # papermill's tag of the cell it adds


def offline_html(notebook: nbformat.NotebookNode) -> str:
    """The notebook as HTML without its code cells, loading nothing from a network (nbconvert's
    lab page without its CDN scripts: fourds.report.offline).

    Raises:
        RuntimeError: the page would still load something from elsewhere (a newer nbconvert
            template, or an output that embeds a remote script): the URLs, named.
    """
    exporter = HTMLExporter(
        exclude_input=True,
        extra_loaders=[DictLoader({TEMPLATE_NAME: OFFLINE_TEMPLATE})],
        template_file=TEMPLATE_NAME,
    )
    html, _ = exporter.from_notebook_node(notebook)
    remote = external_loads(html)
    if remote:
        raise RuntimeError(f"the report would load {', '.join(remote)}: it must open offline")
    return html


def without_run_metadata(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """`notebook` without what papermill and the kernel record about one execution (start and
    end times, durations, the temporary output path, the random id of the parameters cell it
    injects) and without what its cells wrote to stderr (the environment's: matplotlib
    building its font cache on a first run, warnings naming this machine's paths; see
    `stderr_text`): an executed report then depends only on its inputs, and its DVC hash
    repeats when they do. Changes `notebook` in place."""
    notebook.metadata.pop("papermill", None)
    for cell in notebook.cells:
        for key in RUN_METADATA:
            cell.metadata.pop(key, None)
        if INJECTED in cell.metadata.get("tags", []):
            cell.id = INJECTED
        if "outputs" in cell:
            cell.outputs = [output for output in cell.outputs if not _is_stderr(output)]
    return notebook


def stderr_text(notebook: nbformat.NotebookNode) -> str:
    """What the notebook's cells wrote to stderr, in order."""
    return "".join(
        output.text for cell in notebook.cells for output in cell.get("outputs", [])
        if _is_stderr(output)
    )  # fmt: skip


def _is_stderr(output: nbformat.NotebookNode) -> bool:
    return output.output_type == "stream" and output.name == "stderr"


def execute_notebook(notebook: str | Path, parameters: dict[str, Any], out_dir: str | Path) -> Path:
    """Execute `notebook` with `parameters` (run in `out_dir`) into out_dir/<name>.ipynb
    (without its run metadata and stderr, which go to this process's stderr:
    `without_run_metadata`) and out_dir/<name>.html (`offline_html`), each atomically; returns
    the HTML path."""
    notebook, out_dir = Path(notebook), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / notebook.name
    with atomic_path(executed) as partial:
        papermill.execute_notebook(
            str(notebook),
            str(partial),
            parameters=parameters,
            cwd=str(out_dir),
            progress_bar=False,
            language="python",
            kernel_name="python3",
        )
        executed_notebook = nbformat.read(partial, as_version=4)
        sys.stderr.write(stderr_text(executed_notebook))  # to the stage's log, not the report
        nbformat.write(without_run_metadata(executed_notebook), partial)
    html = offline_html(executed_notebook)
    html_path = executed.with_suffix(".html")
    with atomic_path(html_path) as partial:
        partial.write_text(html)
    return html_path
