"""A stage records only the params it ran with: a params file rewritten while the stage runs
fails it with one line, and what it wrote is withdrawn (fourds.config.guard)."""

from __future__ import annotations

import hashlib

import pytest
import yaml

from fourds.atomic import DVC_GITIGNORE, OWNER_MARKER, claim_output_directory, write_json
from fourds.cli import main
from fourds.config.operative import stage
from fourds.errors import ParamsChangedError
from fourds.records import write_run_record
from fourds.stages import curate
from tests.conftest import one_error_line
from tests.train.conftest import write_tiny_params


def rewrite(params_path) -> None:
    """What `fourds params ... readout.seed=301 --out params.yaml` does to the file."""
    raw = yaml.safe_load(params_path.read_text())
    raw["readout"]["seed"] = 301
    params_path.write_text(yaml.safe_dump(raw))


def files(folder) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes)."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def folder(tmp_path):
    """A params file, and an output folder of an earlier run: fourds' marker, DVC's
    .gitignore, a result this run leaves alone and one it replaces, a resumable checkpoint."""
    params = write_tiny_params(tmp_path / "params.yaml")
    out = claim_output_directory(tmp_path / "out")
    (out / DVC_GITIGNORE).write_text("/run.yaml\n")
    write_json(out / "untouched.json", {"run": "earlier"})
    write_json(out / "replaced.json", {"run": "earlier"})
    (out / "resume" / "step-000010").mkdir(parents=True)
    (out / "resume" / "step-000010" / "state.pt").write_bytes(b"earlier")
    return params, out


def toy_stage(rewrite_at: str):
    """A stage that writes results (one replacing the earlier run's, one in a new folder) and
    a resumable checkpoint, and rewrites its params file before its run record
    (`rewrite_at` "before_record") or after it ("after_record")."""

    @stage
    def run(out_dir, params_path):
        write_json(out_dir / "replaced.json", {"run": "this"})
        write_json(out_dir / "examples" / "metrics.json", {"run": "this"})
        (out_dir / "resume" / "step-000020").mkdir()
        (out_dir / "resume" / "step-000020" / "state.pt").write_bytes(b"this")
        if rewrite_at == "before_record":
            rewrite(params_path)
        write_run_record(out_dir, "readout@tiny-depth-frozen", params_path, [], "cpu")
        if rewrite_at == "after_record":
            rewrite(params_path)

    return run


@pytest.mark.parametrize("rewrite_at", ["before_record", "after_record"])
def test_a_stage_whose_params_change_withdraws_what_it_wrote_and_nothing_else(folder, rewrite_at):
    params, out = folder
    with pytest.raises(ParamsChangedError) as raised:
        toy_stage(rewrite_at)(out, params)
    assert str(raised.value) == (
        f"{params} changed while the stage ran: nothing recorded; run it again"
    )
    assert sorted(files(out)) == [
        OWNER_MARKER,
        DVC_GITIGNORE,
        "resume/step-000010/state.pt",
        "resume/step-000020/state.pt",  # a later run resumes from it: no DVC output
        "untouched.json",
    ]
    assert not (out / "examples").exists()  # the folder it made, emptied
    assert yaml.safe_load((out / "untouched.json").read_text()) == {"run": "earlier"}
    assert yaml.safe_load(params.read_text())["readout"]["seed"] == 301  # the user's file


def test_an_unchanged_params_file_is_recorded_as_the_stage_read_it(folder):
    params, out = folder
    digest = hashlib.sha256(params.read_bytes()).hexdigest()
    toy_stage("never")(out, params)
    assert yaml.safe_load((out / "run.yaml").read_text())["params_sha256"] == digest
    assert {"replaced.json", "examples/metrics.json", "run.yaml"} <= set(files(out))


def test_the_curate_stage_records_nothing_when_its_params_change_while_it_runs(
    tiny_corpus, tmp_path, monkeypatch, capsys
):
    """The stage as DVC runs it: `fourds curate`, whose params.yaml is rewritten after the
    clips are curated and before the stage's results are written; it exits non-zero with one
    line, and leaves no results DVC would lock, its corpus and the files beside it as they
    were."""
    params = write_tiny_params(tmp_path / "params.yaml")
    raw = yaml.safe_load(params.read_text())
    raw["curate"]["workers"] = 0
    params.write_text(yaml.safe_dump(raw))
    (tmp_path / "notes.txt").write_text("the user's\n")
    corpus = files(tiny_corpus)
    summary = curate.manifest_summary

    def rewritten_meanwhile(manifest):
        rewrite(params)
        return summary(manifest)

    monkeypatch.setattr(curate, "manifest_summary", rewritten_meanwhile)
    out = tmp_path / "curated"
    command = ["curate", "--params", str(params), "--data", str(tiny_corpus), "--out", str(out)]
    assert main(command) == 2
    assert one_error_line(capsys.readouterr().err, "curate") == (
        f"fourds curate: error: {params} changed while the stage ran: nothing recorded; "
        "run it again"
    )
    assert sorted(files(out)) == [OWNER_MARKER]  # no run.yaml, metrics.json, manifest, shards
    assert files(tiny_corpus) == corpus
    assert (tmp_path / "notes.txt").read_text() == "the user's\n"
    assert yaml.safe_load(params.read_text())["readout"]["seed"] == 301
