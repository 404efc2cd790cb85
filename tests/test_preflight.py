"""Before a stage runs under `dvc repro`, a file in reports/out that would make the report stage
refuse its folder at the end is said in one line (fourds.preflight)."""

from __future__ import annotations

from pathlib import Path

import yaml

from fourds.cli import main
from fourds.preflight import REPORT_OUT, REPORT_OUTPUTS, foreign_report_files
from tests.conftest import REPO_ROOT, one_error_line


def test_the_report_outputs_are_dvc_yamls():
    report = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]["report"]
    declared = [*report["outs"], *(next(iter(plot)) for plot in report["plots"])]
    assert {Path(path).relative_to(REPORT_OUT).parts[0] for path in declared} <= REPORT_OUTPUTS
    assert f"--out {REPORT_OUT.as_posix()}" in report["cmd"]


def test_a_foreign_file_in_reports_out_stops_the_first_stage_under_dvc(
    tmp_path, monkeypatch, capsys
):
    out = tmp_path / REPORT_OUT
    (out / "plots").mkdir(parents=True)
    (out / "plots/index.html").write_text("a page a command wrote\n")
    (out / "scaling.html").write_text("the report's, which DVC removes before it runs\n")
    (out / ".gitignore").write_text("/scaling.html\n")
    assert foreign_report_files(tmp_path) == [out / "plots"]
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    missing = tmp_path / "no-such-params.yaml"  # the stage would fail later, on its params
    assert main(["curate", "--params", str(missing), "--out", str(tmp_path / "c")]) == 2
    error = one_error_line(capsys.readouterr().err, "curate")
    assert "reports/out holds reports/out/plots, which no stage writes" in error
    assert "move it out of reports/out" in error
    (out / ".fourds-output").write_text("")  # the report's folder already: nothing to say
    assert foreign_report_files(tmp_path) == []
    monkeypatch.delenv("DVC_ROOT")
    (out / ".fourds-output").unlink()  # outside DVC nothing is checked: the params error
    assert main(["curate", "--params", str(missing), "--out", str(tmp_path / "c")]) == 2
    assert "no-such-params.yaml" in one_error_line(capsys.readouterr().err, "curate")
