"""A readout split of any size in bounded memory (fourds.data.spill): arrays past the budget are
written to a scratch folder and read back memory-mapped, with the values `np.stack` gives; a
benchmark whose clips take 1152 MiB is read in a fresh process that peaks under BOUND_MIB
(about 260 MiB measured; 2.5 GiB when every clip is held and stacked in memory)."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fourds.atomic import OWNER_MARKER, scratch_directory
from fourds.config import SourceConfig
from fourds.data.benchmarks import load_readout_split
from fourds.data.spill import HostBudget, StackBuilder

REPO_ROOT = Path(__file__).resolve().parents[2]
BOUND_MIB = 400
PICKLES, FRAMES_PER_VIDEO, SIZE = 12, 512, 256  # 384 clips of 16x256x256x3: 1152 MiB


def stacked(budget: HostBudget, arrays: list[np.ndarray], padded: bool = False) -> np.ndarray:
    """`arrays` through a StackBuilder of `budget`."""
    builder = StackBuilder(budget, "array", padded)
    for array in arrays:
        builder.add(array)
    return builder.result()


def test_a_stack_past_its_budget_is_mapped_from_disk_with_the_values_of_np_stack(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.random((3, 4)).astype(np.float32) for _ in range(10)]
    spilled = stacked(HostBudget(tmp_path, 3 * arrays[0].nbytes), arrays)  # the 4th spills
    held = stacked(HostBudget(tmp_path, 1 << 30), arrays)
    assert isinstance(spilled, np.memmap) and not isinstance(held, np.memmap)
    for result in (spilled, held):
        assert result.dtype == np.float32 and result.shape == (10, 3, 4)
        np.testing.assert_array_equal(result, np.stack(arrays))


def test_ragged_arrays_are_padded_with_zeros_on_disk_as_in_memory(tmp_path):
    rng = np.random.default_rng(1)
    ragged = [rng.random((count, 5, 2)).astype(np.float32) for count in (2, 0, 4, 1, 3)]
    expected = np.zeros((5, 4, 5, 2), np.float32)
    for row, array in enumerate(ragged):
        expected[row, : len(array)] = array
    spilled = stacked(HostBudget(tmp_path, 0), ragged, padded=True)
    held = stacked(HostBudget(None, 0), ragged, padded=True)
    assert isinstance(spilled, np.memmap)
    for result in (spilled, held):
        assert result.dtype == expected.dtype
        np.testing.assert_array_equal(result, expected)


def test_labels_stay_in_memory_and_arrays_that_do_not_stack_are_refused(tmp_path):
    labels = stacked(HostBudget(tmp_path, 0), [np.asarray("cat"), np.asarray("a dog")])
    assert labels.tolist() == ["cat", "a dog"] and not isinstance(labels, np.memmap)
    with pytest.raises(ValueError, match="does not stack"):
        stacked(HostBudget(tmp_path, 0), [np.zeros(3), np.zeros(4)])


def test_scratch_is_removed_after_the_run_and_a_killed_runs_by_the_next(tmp_path):
    out = tmp_path / "run"
    with scratch_directory(out) as scratch:
        assert scratch.parent == tmp_path and scratch.name.startswith(".run.scratch-")
        (scratch / "video.bin").write_bytes(b"clip")
    assert not scratch.exists()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process that no longer runs, as a killed run's
    killed = tmp_path / f".run.scratch-{gone.pid}-abc"
    killed.mkdir()
    (killed / OWNER_MARKER).write_text("")
    (killed / "features.bin").write_bytes(b"features")
    unmarked = tmp_path / f".run.scratch-{gone.pid}-def"  # not fourds': left alone
    unmarked.mkdir()
    with scratch_directory(out):
        pass
    assert not killed.exists() and unmarked.is_dir()


def write_tapvid_folder(folder: Path) -> int:
    """PICKLES TAP-Vid pickles of one FRAMES_PER_VIDEO-frame 2x2 video each (a few KB), every
    frame stretched to SIZE x SIZE when read; returns the bytes of all their clips."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(PICKLES):
        record = {
            "video": rng.integers(0, 255, (FRAMES_PER_VIDEO, 2, 2, 3), dtype=np.uint8),
            "points": rng.random((3, FRAMES_PER_VIDEO, 2)).astype(np.float32),
            "occluded": rng.random((3, FRAMES_PER_VIDEO)) < 0.5,
        }
        (folder / f"{index:04d}.pkl").write_bytes(pickle.dumps([record], protocol=4))
    return PICKLES * FRAMES_PER_VIDEO * SIZE * SIZE * 3


def read_split(folder: str, scratch: str, max_mib: str) -> str:
    """Read the TAP-Vid `folder` as a readout split of 16-frame clips within a budget of
    `max_mib` MiB in `scratch`: JSON of its arrays' kinds and shapes and this process's peak
    resident memory (VmHWM) in MiB."""
    source = SourceConfig("tapvid", folder, folder, 1)
    budget = HostBudget(Path(scratch), int(max_mib) << 20)
    keys = ("video", "tracks", "visible")
    clips = load_readout_split(source, "train", "", keys, 16, SIZE, budget)
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    arrays = {key: [type(value).__name__, list(value.shape)] for key, value in clips.items()}
    return json.dumps({"arrays": arrays, "peak_mib": peak / 1024})


def test_a_benchmark_larger_than_memory_allows_is_read_in_bounded_memory(tmp_path):
    total = write_tapvid_folder(tmp_path / "tapvid")
    assert total >> 20 > 2.5 * BOUND_MIB  # held in memory, the clips alone would break the bound
    (tmp_path / "scratch").mkdir()
    code = f"import sys\nfrom {__name__} import read_split\nprint(read_split(*sys.argv[1:]))"
    args = [str(tmp_path / "tapvid"), str(tmp_path / "scratch"), "32"]
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    read = json.loads(result.stdout.strip().splitlines()[-1])
    clips = PICKLES * FRAMES_PER_VIDEO // 16
    assert read["arrays"]["video"] == ["memmap", [clips, 16, SIZE, SIZE, 3]]
    assert read["arrays"]["visible"][1][0] == clips
    assert read["peak_mib"] < BOUND_MIB, read
    # the same pixels as the clips read in memory (first pickle only: 1/12 of the total)
    first = tmp_path / "first"
    first.mkdir()
    (first / "0000.pkl").symlink_to(tmp_path / "tapvid" / "0000.pkl")
    source = SourceConfig("tapvid", str(first), str(first), 1)
    held = load_readout_split(source, "train", "", ("video",), 16, SIZE)["video"]
    on_disk = np.memmap(
        next((tmp_path / "scratch").glob("video-*.bin")),
        np.uint8,
        "r",
        shape=(clips, *held.shape[1:]),
    )
    np.testing.assert_array_equal(on_disk[: len(held)], held)
