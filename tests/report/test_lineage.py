"""The lineage table reads the stages' run records."""

from __future__ import annotations

import hashlib

import pytest

from fourds.records import write_run_record
from fourds.report.lineage import corpus_digest, inputs_digest, lineage_row


def test_a_run_record_becomes_a_lineage_row(tmp_path):
    params, data = tmp_path / "params.yaml", tmp_path / "shard.npz"
    params.write_text("seed: 1\n")
    data.write_bytes(b"clips")
    write_run_record(tmp_path / "stage", "readout@s-depth", params, [data], "cpu")
    row = lineage_row(tmp_path / "stage")
    assert row["stage"] == "readout@s-depth" and row["device"] == "cpu"
    assert row["params sha256"] == hashlib.sha256(b"seed: 1\n").hexdigest()[:12]
    data_digest = hashlib.sha256(b"clips").hexdigest()
    expected = hashlib.sha256(f"{data} {data_digest}\n".encode()).hexdigest()
    assert row["data sha256"] == expected[:12] and row["inputs"] == "1"
    assert row["packages"].startswith("fourds ")


def test_inputs_digest_ignores_order_but_not_content():
    a = inputs_digest({"x": "1", "y": "2"})
    assert a == inputs_digest({"y": "2", "x": "1"}) != inputs_digest({"x": "1", "y": "3"})


def test_a_stage_without_a_run_record_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run record"):
        lineage_row(tmp_path)


def test_corpus_digest_reads_data_dvc(tmp_path):
    (tmp_path / "data.dvc").write_text("outs:\n- md5: abc.dir\n  path: data\n")
    assert corpus_digest(tmp_path / "data.dvc") == "abc.dir"
