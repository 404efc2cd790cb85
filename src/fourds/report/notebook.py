"""Execute a parameterised notebook with papermill and export it to HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import papermill
from nbconvert import HTMLExporter

from fourds.atomic import atomic_path


def execute_notebook(notebook: str | Path, parameters: dict[str, Any], out_dir: str | Path) -> Path:
    """Execute `notebook` with `parameters` (run in `out_dir`) into out_dir/<name>.ipynb and
    out_dir/<name>.html, each atomically; returns the HTML path."""
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
    html, _ = HTMLExporter(exclude_input=True).from_notebook_node(
        nbformat.read(executed, as_version=4)
    )
    html_path = executed.with_suffix(".html")
    with atomic_path(html_path) as partial:
        partial.write_text(html)
    return html_path
