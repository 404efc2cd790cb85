"""Data pickles load their arrays; a pickle that would run code is refused without running it."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from fourds.data.readers import ReaderError
from fourds.data.readers.safe_pickle import PickleLimits, UnsafePickleError, load_data_pickle


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_tapvid_style_records_load_under_every_protocol(tmp_path, protocol):
    record = {
        "video": np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3),
        "points": np.random.default_rng(0).random((3, 2, 2)).astype(np.float32),
        "occluded": np.array([[True, False]] * 3),
        "frames": [b"\xff\xd8jpeg", b"\xff\xd8jpeg"],
        "object_frames": np.array([b"\xff\xd8jpeg", b"\xff\xd8"], dtype=object),
        "big_endian": np.arange(6, dtype=">i2").reshape(2, 3),
        "fortran": np.asfortranarray(np.ones((2, 3), np.float64)),
        "names": np.array(["bear", "cow"]),
        "raw": np.array([b"ab", b"c"]),
        "complex": np.array([1 + 2j], np.complex64),
        "scalar": np.float32(0.5),
        "empty": np.zeros((0, 4), np.uint8),
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


CRAFTED = {  # pickle opcodes no pickle of data holds -> what the error says
    "an unknown text codec": (
        b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x04\x00\x00\x00nope\x86R.",
        "LookupError: unknown encoding: nope",
    ),
    "a persistent id": (b"P0\n.", "UnpicklingError: unsupported persistent id encountered"),
}


@pytest.mark.parametrize("data, reason", CRAFTED.values(), ids=CRAFTED)
def test_a_crafted_pickle_gets_a_one_line_reader_error(data, reason, tmp_path):
    path = tmp_path / "crafted.pkl"
    path.write_bytes(data)
    with pytest.raises(ReaderError) as raised:
        load_data_pickle(path)
    assert str(raised.value).startswith(f"{path}: not a readable pickle (")
    assert reason in str(raised.value) and "\n" not in str(raised.value)


def doubling_lists(levels: int) -> list:
    """Lists that each hold the previous one twice: 2^levels leaves in a few hundred bytes."""
    nested: list = [0]
    for _ in range(levels):
        nested = [nested, nested]
    return nested


def test_a_small_pickle_of_shared_nested_lists_is_refused_quickly(tmp_path):
    import tracemalloc

    path = tmp_path / "bomb.pkl"
    path.write_bytes(pickle.dumps(doubling_lists(60), protocol=4))
    assert path.stat().st_size < 600
    tracemalloc.start()
    with pytest.raises(UnsafePickleError, match=r"bomb.pkl: nests deeper than 32 levels"):
        load_data_pickle(path)
    assert tracemalloc.get_traced_memory()[1] < 10 << 20
    tracemalloc.stop()
    # as wide as it is deep: three levels of 1000 references to one list
    row = [0] * 1000
    path.write_bytes(pickle.dumps([[row] * 1000] * 1000, protocol=4))
    with pytest.raises(UnsafePickleError, match=r"more than 4000000 objects"):
        load_data_pickle(path)


def test_the_limits_on_bytes_and_arrays(tmp_path):
    array = np.zeros(1000, np.uint8)
    path = tmp_path / "arrays.pkl"
    path.write_bytes(pickle.dumps({"a": [array] * 5}))
    assert len(load_data_pickle(path)["a"]) == 5
    with pytest.raises(UnsafePickleError, match=r"more than 4000 bytes"):
        load_data_pickle(path, PickleLimits(max_bytes=4000))
    with pytest.raises(UnsafePickleError, match=r"over PickleLimits.max_array_bytes=999"):
        load_data_pickle(path, PickleLimits(max_array_bytes=999))
    with pytest.raises(UnsafePickleError, match=r"bytes, over PickleLimits.max_bytes=10"):
        load_data_pickle(path, PickleLimits(max_bytes=10))


class Rebuilt:
    """Pickles as numpy's rebuilder `callable(*args)` followed by BUILD with `state`."""

    def __init__(self, rebuild, args, state):
        self.reduced = rebuild, args, state

    def __reduce__(self):
        return self.reduced


def array_state(shape, dtype, data):
    return Rebuilt(
        np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, data)
    )


MALFORMED_STATES = {  # numpy crashes the interpreter (a segfault) on each of these states
    "a dtype whose subarray is an int": (
        Rebuilt(np.dtype, ("V8", False, True), (3, "|", 5, -1, -1, 0)),
        "refusing a numpy dtype '|V8' with the state (3, '|', 5, -1, -1, 0)",
    ),
    "an object array whose items do not fill its shape": (
        array_state((100_000,), np.dtype(object), [1]),
        "refusing a (100000,) object array whose data (list) does not fill its shape",
    ),
}


@pytest.mark.parametrize("rebuilt, reason", MALFORMED_STATES.values(), ids=MALFORMED_STATES)
def test_numpy_states_that_would_crash_the_interpreter_are_refused(rebuilt, reason, tmp_path):
    """Run in a child, so that a regression is a failed test rather than a dead worker."""
    path = tmp_path / "crash.pkl"
    path.write_bytes(pickle.dumps(rebuilt, protocol=2))
    loads = (
        "import sys\n"
        "from fourds.data.readers.safe_pickle import UnsafePickleError, load_data_pickle\n"
        "try:\n    load_data_pickle(sys.argv[1])\n"
        "except UnsafePickleError as error:\n    print(error)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", loads, str(path)], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith(f"{path}: {reason}")


def test_other_malformed_array_and_dtype_states_are_refused(tmp_path):
    path = tmp_path / "malformed.pkl"
    refused = {
        "bytes that do not fill the shape": array_state((2,), np.dtype("f4"), b"1234567"),
        "a shape that is not ints": array_state((2.0,), np.dtype("f4"), b"12345678"),
        "a dtype that is not a dtype": array_state((2,), "f4", b"12345678"),
        "a dtype state numpy does not write": Rebuilt(
            np.dtype, ("V8", False, True), (3, "|", None, None, None, -1, -1, 0)
        ),
    }
    for what, rebuilt in refused.items():
        path.write_bytes(pickle.dumps(rebuilt, protocol=2))
        with pytest.raises(UnsafePickleError, match="refusing a"):
            load_data_pickle(path)
            pytest.fail(f"loaded {what}")
    path.write_bytes(pickle.dumps(Rebuilt(bytes, (1 << 40,), None), protocol=2))
    with pytest.raises(UnsafePickleError, match="refusing builtins.bytes called with arguments"):
        load_data_pickle(path)
