"""Execute a parameterised notebook with papermill and export it to HTML that opens offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import papermill
from jinja2 import DictLoader
from nbconvert import HTMLExporter

from fourds.atomic import atomic_path
from fourds.report.offline import OFFLINE_TEMPLATE, external_loads

TEMPLATE_NAME = "fourds_offline.html.j2"


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


def execute_notebook(notebook: str | Path, parameters: dict[str, Any], out_dir: str | Path) -> Path:
    """Execute `notebook` with `parameters` (run in `out_dir`) into out_dir/<name>.ipynb and
    out_dir/<name>.html (`offline_html`), each atomically; returns the HTML path."""
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
    html = offline_html(nbformat.read(executed, as_version=4))
    html_path = executed.with_suffix(".html")
    with atomic_path(html_path) as partial:
        partial.write_text(html)
    return html_path
