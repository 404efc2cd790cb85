"""The `report` stage: execute the parameterised notebook with papermill, export HTML."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
from nbconvert import HTMLExporter

from fourds.config import Params
from fourds.records import atomic_path


def run(
    params: Params,
    notebook: str | Path,
    pretrain_root: str | Path,
    readout_root: str | Path,
    out_dir: str | Path,
) -> Path:
    """Execute `notebook` into out_dir/<name>.ipynb and out_dir/<name>.html; returns the HTML path.

    The notebook itself writes the tables (tables/scaling_<task>.csv) that DVC's top-level plots
    read.
    """
    notebook, out_dir = Path(notebook), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / notebook.name
    with atomic_path(executed) as partial:
        papermill.execute_notebook(
            str(notebook),
            str(partial),
            parameters={
                "ladder": params.ladder.name,
                "scales": list(params.ladder.scales),
                "tasks": list(params.readout.tasks),
                "pretrain_root": str(Path(pretrain_root).resolve()),
                "readout_root": str(Path(readout_root).resolve()),
                "out_dir": str(out_dir.resolve()),
            },
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
