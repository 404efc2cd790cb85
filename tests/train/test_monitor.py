"""The pretraining monitor: live metrics with DVCLive, the progress bar alone without it."""

import importlib.util
import json

import pytest

from fourds.train import monitor as monitor_module
from fourds.train.monitor import Monitor, RunShape


def test_without_dvclive_the_monitor_says_so_once_and_logs_the_bar_alone(
    tmp_path, monkeypatch, capsys
):
    real_find_spec = importlib.util.find_spec

    def no_dvclive(name, *args):
        return None if name == "dvclive" else real_find_spec(name, *args)

    monkeypatch.setattr(monitor_module.importlib.util, "find_spec", no_dvclive)
    monitor = Monitor(tmp_path, RunShape("pretrain tiny", 2, 4, 8, 1e9, 1e12), 0, enabled=True)
    assert capsys.readouterr().out == (
        "DVCLive is not installed: no live metrics under live/ (loss.csv is still written)\n"
    )
    monitor.step_done()
    perf = monitor.log(1, loss=0.5, lr=1e-4)
    monitor.close()
    assert perf["clips_per_second"] > 0 and perf["mfu"] == pytest.approx(
        perf["clips_per_second"] * 1e9 / 1e12
    )
    assert not (tmp_path / "live").exists()


def test_with_dvclive_rank_0_writes_live_metrics(tmp_path):
    monitor = Monitor(tmp_path, RunShape("pretrain tiny", 2, 4, 8, 1e9, None), 0, enabled=True)
    monitor.step_done()
    monitor.log(1, loss=0.5, lr=1e-4)
    monitor.close()
    assert (tmp_path / "live" / "metrics.json").is_file()


@pytest.mark.parametrize("left_behind", [b"", b'{"step": 40, "train": {"lo', b"\xff\xfe"])
def test_a_summary_cut_short_by_a_kill_does_not_stop_the_resumed_run(tmp_path, capsys, left_behind):
    first = Monitor(tmp_path, RunShape("pretrain tiny", 4, 4, 8, 1e9, None), 0, enabled=True)
    first.log(2, loss=0.5, lr=1e-4)
    first.close()
    summary = tmp_path / "live" / "metrics.json"
    curve = tmp_path / "live" / "plots" / "metrics" / "train" / "loss.tsv"
    kept_curve = curve.read_text()
    summary.write_bytes(left_behind)  # what a kill in the middle of DVCLive's rewrite leaves
    capsys.readouterr()

    resumed = Monitor(tmp_path, RunShape("pretrain tiny", 4, 4, 8, 1e9, None), 2, enabled=True)
    assert capsys.readouterr().out == (
        f"{summary} was cut short by the interruption: DVCLive starts its summary again\n"
    )
    resumed.log(4, loss=0.25, lr=1e-4)
    resumed.close()
    assert json.loads(summary.read_text())["train"]["loss"] == 0.25
    assert curve.read_text().startswith(kept_curve)


def test_a_readable_summary_is_resumed_as_it_is(tmp_path, capsys):
    first = Monitor(tmp_path, RunShape("pretrain tiny", 4, 4, 8, 1e9, None), 0, enabled=True)
    first.log(2, loss=0.5, lr=1e-4)
    first.close()
    capsys.readouterr()
    resumed = Monitor(tmp_path, RunShape("pretrain tiny", 4, 4, 8, 1e9, None), 2, enabled=True)
    assert capsys.readouterr().out == ""
    resumed.close()
