"""The `report` stage: execute the report notebook over every stage's outputs, export HTML.

The notebook reads the stages' outputs under `runs_root` (curate/, pretrain/<scale>/,
readout/<scale>-<regime>/, fidelity/<scale>/) and the corpus hash in `data_dvc`, and
itself writes the tables (tables/scaling_<task>.csv) and the data of the stage's DVC plots
(plot_tables/plot_<task>.csv, kept in git). The stage's run record and operative.gin go to
out_dir.
"""

from __future__ import annotations

import os
from pathlib import Path

from fourds.atomic import claim_output_directory
from fourds.config import Params
from fourds.config.operative import stage
from fourds.records import write_run_record
from fourds.report.lineage import read_files, stage_dirs
from fourds.report.notebook import execute_notebook


@stage
def run(
    params: Params,
    notebook: str | Path,
    runs_root: str | Path,
    data_dvc: str | Path,
    out_dir: str | Path,
    params_path: str | Path,
) -> Path:
    """Write out_dir/<notebook name>.ipynb and .html; returns the HTML path."""
    runs_root, out_dir = Path(runs_root), Path(out_dir)
    claim_output_directory(out_dir, (runs_root, notebook, data_dvc))
    parameters = {
        "ladder": params.ladder.name,
        "scales": list(params.ladder.scales),
        "tasks": list(params.readout.tasks),
        "regimes": list(params.readout.regimes),
        # relative to out_dir, where the notebook runs: the executed notebook names no folder
        # of this machine, so a clone elsewhere renders the same report
        "runs_root": _relative(runs_root, out_dir),
        "data_dvc": _relative(data_dvc, out_dir),
        "out_dir": ".",
    }
    html_path = execute_notebook(notebook, parameters, out_dir)
    stages = stage_dirs(runs_root, params.ladder.scales, params.readout.regimes)
    inputs = [Path(notebook), Path(data_dvc)]
    inputs += [file for stage in stages for file in read_files(stage) if file.suffix != ".csv"]
    write_run_record(out_dir, "report", params_path, inputs, "cpu")
    return html_path


def _relative(path: str | Path, start: Path) -> str:
    """`path` relative to the folder `start` (both may be relative to the working directory;
    links are not followed, so a linked runs/ still reads as ../../runs)."""
    return os.path.relpath(os.path.abspath(path), os.path.abspath(start))
