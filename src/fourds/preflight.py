"""Before a stage runs under `dvc repro`: whether the report, the pipeline's last stage, will
refuse its output folder, said at the first stage that runs instead of after every other one.

The report stage claims `reports/out` (fourds.atomic.claim_output_directory): a folder without
fourds' owner marker that holds a file the stage does not write is refused. DVC removes the
stage's own outputs (REPORT_OUTPUTS, dvc.yaml's) before it runs; anything else there (a page a
command wrote, a user's notes) would stop the pipeline at its end. DVC gives every stage
command the repository's root in DVC_ROOT; outside DVC nothing is checked.
"""

from __future__ import annotations

import os
from pathlib import Path

from fourds.atomic import DVC_GITIGNORE, OWNER_MARKER
from fourds.errors import OutputError

REPORT_OUT = Path("reports") / "out"  # the report stage's --out in dvc.yaml
# What the report stage writes there (dvc.yaml's outs and plots, and its execution record)
REPORT_OUTPUTS = frozenset(
    {"scaling.ipynb", "scaling.html", "figures", "tables", "plot_tables", "run.yaml"}
    | {"operative.gin", "execution.yaml", DVC_GITIGNORE, OWNER_MARKER}
)


def foreign_report_files(root: Path) -> list[Path]:
    """The entries of `root`/reports/out that will make the report stage refuse the folder:
    none where it holds fourds' owner marker (the folder is the report's already)."""
    out = root / REPORT_OUT
    if not out.is_dir() or (out / OWNER_MARKER).is_file():
        return []
    return sorted(entry for entry in out.iterdir() if entry.name not in REPORT_OUTPUTS)


def check_before_stage(environment: dict[str, str] = os.environ) -> None:
    """Under `dvc repro` (DVC_ROOT set): OutputError naming what the report stage would refuse
    and how to fix it, before this stage spends any time."""
    if "DVC_ROOT" not in environment:
        return
    root = Path(environment["DVC_ROOT"])
    foreign = foreign_report_files(root)
    if foreign:
        named = ", ".join(str(path.relative_to(root)) for path in foreign[:3])
        raise OutputError(
            f"{REPORT_OUT} holds {named}{' ...' if len(foreign) > 3 else ''}, which no stage "
            f"writes: the report stage would refuse the folder after every other stage has run; "
            f"move it out of {REPORT_OUT}, then run again"
        )
