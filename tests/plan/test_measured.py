"""The plan's compute times: measured where a scale ran at the plan's clips per GPU on the
plan's GPU, assumed (and labelled so) elsewhere."""

import json

import pytest

from fourds.config import ConfigError
from fourds.plan.measured import read_measured_steps


def summary(path, cases, device="NVIDIA H100 80GB HBM3", quick=False):
    record = {"device": device, "commit": "f8bae29aaaa", "quick": quick, "cases": cases}
    path.write_text(json.dumps(record))
    return path


def case(scale, batch, what, ms, compile=False):
    return {"scale": scale, "batch": batch, "what": what, "ms": ms, "compile": compile}


@pytest.fixture
def measured(tmp_path):
    cases = [
        case("4ds_b", 128, "model", 54.0),
        case("4ds_b", 128, "model", 48.0, compile=True),  # the faster of the two counts
        case("4ds_b", 128, "step", 62.0, compile=True),
        case("4ds_b", 4, "model", 27.5),
        case("4ds_l", 64, "model", 50.0),
    ]
    return read_measured_steps(summary(tmp_path / "summary.json", cases))


def test_a_measured_batch_gives_its_whole_step_else_its_model_step(measured):
    at_128 = measured.step_time("4ds_b", 128, flops_per_clip=1e11, peak=1e15, mfu=0.45)
    assert (at_128.seconds, at_128.source) == (0.062, "measured")
    at_4 = measured.step_time("4ds_b", 4, flops_per_clip=1e11, peak=1e15, mfu=0.45)
    assert (at_4.seconds, at_4.source) == (0.0275, "measured (model)")


def test_other_batches_take_the_nearest_measured_mfu_and_say_it_is_assumed(measured):
    # 4ds_l at 64 clips in 50 ms: 64 * 2e11 / 0.05 / 1e15 = MFU 0.256; at 16 clips: 12.5 ms
    at_16 = measured.step_time("4ds_l", 16, flops_per_clip=2e11, peak=1e15, mfu=0.45)
    assert at_16.seconds == pytest.approx(0.0125)
    assert at_16.source == "assumed (MFU 0.26 of 4ds_l at 64)"
    unmeasured = measured.step_time("4ds_h", 4, flops_per_clip=4e11, peak=1e15, mfu=0.4)
    assert unmeasured.seconds == pytest.approx(4 * 4e11 / (1e15 * 0.4))
    assert unmeasured.source == "assumed (MFU 0.4)"


def test_measurements_apply_to_their_own_gpu_only(measured):
    assert measured.applies_to("H100 SXM 80GB") and measured.applies_to("H100 PCIe 80GB")
    assert not measured.applies_to("A100 SXM 80GB")


def test_no_file_is_no_measurement_and_a_quick_or_foreign_file_is_refused(tmp_path):
    assert read_measured_steps(tmp_path / "missing.json") is None
    quick = summary(tmp_path / "quick.json", [case("4ds_b", 4, "model", 1.0)], quick=True)
    with pytest.raises(ConfigError, match="quick.json is a --quick run"):
        read_measured_steps(quick)
    (tmp_path / "other.json").write_text(json.dumps({"benchmark": "loader_throughput"}))
    with pytest.raises(ConfigError, match="other.json is not a gpu_step.py summary"):
        read_measured_steps(tmp_path / "other.json")
