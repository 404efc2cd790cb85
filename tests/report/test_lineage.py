"""The lineage table: each stage's name, run record and dvc.lock entry, with the digests DVC
itself records."""

from __future__ import annotations

import shlex
import sys
import textwrap

import pytest
import yaml

from fourds.records import write_run_record
from fourds.report.lineage import (
    READ,
    anchor,
    corpus_digest,
    lineage_row,
    link,
    readout_stage,
    stage_dirs,
    stage_name,
)
from tests.conftest import sh

# The command of a readout stage of the DVC repository below: the files a readout writes.
STAGE_SCRIPT = """
import sys
from pathlib import Path

from fourds.records import write_run_record

name = sys.argv[1]
out = Path("runs/readout") / name
for folder in ("metrics", "clips"):
    (out / folder).mkdir(parents=True, exist_ok=True)
(out / "metrics/depth.json").write_text('{"abs_rel": 0.25}\\n')
# csv's line ends: DVC 3 hashes a text file's bytes as they are (DVC 2 turned CRLF into LF)
(out / "clips/depth.csv").write_bytes(b"clip,weight,abs_rel\\r\\n0,1,0.2\\r\\n1,1,0.3\\r\\n")
(out / "clips/pose.csv").write_bytes(b"clip,weight,end_point_error\\n0,1,0.5\\n")
write_run_record(out, f"readout@{name}", "params.yaml", [out / "clips/depth.csv"], "cpu")
"""


@pytest.fixture(scope="module")
def dvc_run(tmp_path_factory):
    """A DVC repository whose readout matrix (one scale and regime) ran with `dvc repro`: its
    folder, and dvc.lock."""
    repo = tmp_path_factory.mktemp("lineage")
    (repo / "make_readout.py").write_text(STAGE_SCRIPT)
    (repo / "params.yaml").write_text("seed: 1\n")
    folder = "runs/readout/${item.scale}-${item.regime}"
    command = f"{shlex.quote(sys.executable)} make_readout.py"
    (repo / "dvc.yaml").write_text(
        textwrap.dedent(f"""\
            stages:
              readout:
                matrix:
                  scale: [s]
                  regime: [frozen]
                cmd: {command} ${{item.scale}}-${{item.regime}}
                deps:
                  - make_readout.py
                outs:
                  - {folder}/run.yaml
                metrics:
                  - {folder}/metrics:
                      cache: false
                plots:
                  - {folder}/clips:
                      cache: false
            """)
    )
    sh("dvc", "init", "--no-scm", "-q", cwd=repo)
    sh("dvc", "repro", "-q", cwd=repo)
    return repo, yaml.safe_load((repo / "dvc.lock").read_text())


def test_each_digest_shown_is_the_one_dvc_lock_holds_for_the_stage(dvc_run):
    repo, lock = dvc_run
    stage = readout_stage("s", "frozen")
    entry = lock["stages"][stage]  # DVC names the matrix's stage as the report links it
    locked = {out["path"].rsplit("/", 1)[1]: out["md5"] for out in entry["outs"]}
    assert sorted(locked) == sorted(READ["readout"])
    row = lineage_row(repo / "runs/readout/s-frozen", repo / "runs", repo / "reports/out")
    shown = row["dvc.lock entry: outputs' md5"].split("<br>")
    assert shown == [f"`stages: {stage}`"] + [
        f"`{name}` `{locked[name]}`" for name in READ["readout"]
    ]
    assert all(len(digest.removesuffix(".dir")) == 32 for digest in locked.values())  # in full
    clips = repo / "runs/readout/s-frozen/clips/depth.csv"
    assert b"\r\n" in clips.read_bytes() and locked["clips"].endswith(".dir")


def test_a_row_names_its_stage_links_its_run_record_and_carries_the_anchor_numbers_link_to(
    dvc_run,
):
    repo, _ = dvc_run
    row = lineage_row(repo / "runs/readout/s-frozen", repo / "runs", repo / "reports/out")
    assert row["stage"] == ('<span id="lineage-readout-s-frozen"></span>`readout@s-frozen`')
    assert link("0.25", "readout@s-frozen") == ('<a href="#lineage-readout-s-frozen">0.25</a>')
    # the report lives in reports/out: its links climb to the repository root; the run record
    # (written by fourds.records) comes with the stage's operative.gin
    folder = repo / "runs/readout/s-frozen"
    assert row["run record"].split("<br>") == [
        f'<a href="../../runs/readout/s-frozen/{name}">'
        f"<code>runs/readout/s-frozen/{name}</code></a>"
        for name in ("run.yaml", "operative.gin")
    ]
    gin = (folder / "operative.gin").read_text()
    (folder / "operative.gin").unlink()  # a stage that wrote none: run.yaml alone
    alone = lineage_row(folder, repo / "runs", repo / "reports/out")["run record"]
    assert alone == row["run record"].split("<br>")[0]
    (folder / "operative.gin").write_text(gin)
    assert row["device"] == "cpu" and row["packages"].startswith("fourds ")
    # when and at which commit the stage ran is in execution.yaml, beside the run record and
    # not in the report, whose bytes DVC hashes (not a git repository: said, not left blank)
    assert "git commit" not in row and "finished" not in row
    assert yaml.safe_load((folder / "execution.yaml").read_text())["git_commit"] == "unknown"


def test_stage_names_follow_dvc_yaml(tmp_path):
    runs = tmp_path / "runs"
    dirs = stage_dirs(runs, ["s"], ["frozen", "random_init"])
    assert [stage_name(folder) for folder in dirs] == [
        "curate",
        "pretrain@s",
        "fidelity@s",
        "readout@s-frozen",
        "readout@s-random_init",
    ]
    assert anchor("pretrain@s") == "lineage-pretrain-s"


def test_a_record_of_another_stage_is_refused(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("seed: 1\n")
    folder = tmp_path / "runs/readout/s-frozen"
    write_run_record(folder, "readout@s-initial", params, [], "cpu")
    with pytest.raises(ValueError, match="a record of readout@s-initial"):
        lineage_row(folder, tmp_path / "runs", tmp_path)


def test_a_stage_without_a_run_record_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run record"):
        lineage_row(tmp_path / "runs/curate", tmp_path / "runs", tmp_path)


def test_corpus_digest_reads_data_dvc(tmp_path):
    (tmp_path / "data.dvc").write_text("outs:\n- md5: abc.dir\n  path: data\n")
    assert corpus_digest(tmp_path / "data.dvc") == "abc.dir"
