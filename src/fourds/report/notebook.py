"""The `report` stage: execute the parameterised notebook with papermill, export HTML."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
from nbconvert import HTMLExporter

from fourds.config import Params
from fourds.records import atomic_path, write_run_record
from fourds.report.lineage import stage_dirs


def run(
    params: Params,
    notebook: str | Path,
    runs_root: str | Path,
    data_dvc: str | Path,
    out_dir: str | Path,
    params_path: str | Path,
) -> Path:
    """Execute `notebook` into out_dir/<name>.ipynb and out_dir/<name>.html; returns the HTML path.

    The notebook reads the stages' outputs under `runs_root` (curate/, pretrain/<scale>/,
    readout/<scale>-<task>-<regime>/) and the corpus hash in `data_dvc`, and itself writes the
    tables (tables/scaling_<task>.csv) that DVC's top-level plots read. The stage's run record
    and operative.gin go to out_dir.
    """
    notebook, out_dir, runs_root = Path(notebook), Path(out_dir), Path(runs_root)
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
                "regimes": list(params.readout.regimes),
                "runs_root": str(runs_root.resolve()),
                "data_dvc": str(Path(data_dvc).resolve()),
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
    stages = stage_dirs(
        runs_root, params.ladder.scales, params.readout.tasks, params.readout.regimes
    )
    inputs = [notebook, Path(data_dvc)]
    inputs += [stage / name for stage in stages for name in ("metrics.json", "run.yaml")]
    config = {"ladder": params.ladder, "readout": params.readout}
    write_run_record(out_dir, "report", params_path, inputs, "cpu", config=config)
    return html_path
