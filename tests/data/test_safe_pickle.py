"""Data pickles load their arrays; a pickle that would run code is refused without running it."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from fourds.data.readers.safe_pickle import UnsafePickleError, load_data_pickle


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_tapvid_style_records_load_under_every_protocol(tmp_path, protocol):
    record = {
        "video": np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3),
        "points": np.random.default_rng(0).random((3, 2, 2)).astype(np.float32),
        "occluded": np.array([[True, False]] * 3),
        "frames": [b"\xff\xd8jpeg", b"\xff\xd8jpeg"],
    }
    path = tmp_path / "davis.pkl"
    path.write_bytes(pickle.dumps({"bear": record}, protocol=protocol))
    loaded = load_data_pickle(path)["bear"]
    for key, value in record.items():
        np.testing.assert_array_equal(loaded[key], value)
        assert type(loaded[key]) is type(value)


class RunsCode:
    """Unpickling an instance calls os.system: what a malicious pickle does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"video": np.zeros(3), "payload": RunsCode(marker)}))
    with pytest.raises(UnsafePickleError, match=r"evil.pkl: refusing to load posix.system"):
        load_data_pickle(path)
    assert not marker.exists()


def test_a_file_that_is_not_a_pickle_gets_a_clear_error(tmp_path):
    path = tmp_path / "broken.pkl"
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="broken.pkl: not a readable pickle"):
        load_data_pickle(path)
