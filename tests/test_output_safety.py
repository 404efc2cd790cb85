"""No command replaces, deletes or reads back files fourds did not write: an output that is,
holds or lies inside an input, an existing file or foreign folder as an output folder, and an
unwritable output are each refused with one line and exit 2, the inputs left byte for byte."""

import hashlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from fourds.atomic import OWNER_MARKER, OutputError, atomic_directory, claim_output_directory
from fourds.cli import main
from tests.conftest import REPO_ROOT

PARAMS = str(REPO_ROOT / "params.yaml")


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` (links followed) -> sha256 of its bytes."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A user's folder: videos, curated shards, a checkpoint, a report notebook, a corpus file."""
    for name in ("data/pretrain/a.mp4", "data/readout-test/b.mp4", "runs/curate/shards/x.npz",
                 "runs/pretrain/cpu_s/checkpoint.pt", "step/trainer.json", "nb.ipynb", "d.dvc",
                 "official.npz"):  # fmt: skip
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(64))
    return tmp_path


# (command line relative to the workspace, what the refusal must say)
OVERLAPS = {
    "curate into its input": ("curate --data data --out data", "overlaps the input data"),
    "curate into a parent of its input": ("curate --data data --out .", "overlaps the input"),
    "curate inside its input": ("curate --data data --out data/out", "overlaps the input"),
    "synth into a user's folder": ("synth --out data", "fourds did not write"),
    "convert onto its input": ("convert --npz official.npz --out official.npz", "overlaps"),
    "convert onto a user's file": ("convert --npz official.npz --out nb.ipynb", "not written"),
    "export inside its checkpoint": (
        "export --scale cpu_s --checkpoint step --out step/w.pt",
        "overlaps the input step",
    ),
    "pretrain onto its shards": (
        "pretrain --scale cpu_s --curated runs/curate/shards --out runs/curate",
        "overlaps",
    ),
    "readout onto its shards": (
        "readout --scale cpu_s --task depth --curated runs/curate/shards "
        "--pretrained runs/pretrain/cpu_s --out runs/curate/shards",
        "overlaps",
    ),
    "fidelity inside the checkpoints": (
        "fidelity --scale cpu_s --curated runs/curate/shards --pretrain-root runs/pretrain "
        "--out runs/pretrain/cpu_s/fid",
        "overlaps the input runs/pretrain",
    ),
    "report into the runs": (
        "report --notebook nb.ipynb --runs runs --data-dvc d.dvc --out runs",
        "overlaps",
    ),
    "report into a user's folder": (
        "report --notebook nb.ipynb --runs runs/curate --data-dvc d.dvc --out data",
        "fourds did not write",
    ),
    "curate onto an existing file": ("curate --data data --out nb.ipynb", "is not a folder"),
    "curate into an unwritable place": ("curate --data data --out d.dvc/out", "cannot write"),
    "report into an unwritable place": (
        "report --notebook nb.ipynb --runs runs --data-dvc d.dvc --out /proc/fourds-out",
        "cannot write",
    ),
}


@pytest.mark.parametrize("case", OVERLAPS)
def test_every_writing_command_refuses_to_touch_the_users_files(
    case, workspace, monkeypatch, capsys
):
    command, says = OVERLAPS[case]
    monkeypatch.chdir(workspace)
    before = snapshot(workspace)
    name, *args = command.split()
    argv = [name, *args] if name in ("synth", "convert") else [name, "--params", PARAMS, *args]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"fourds {name}: error: ")
    assert says in error
    assert snapshot(workspace) == before  # nothing changed, nothing added


def test_a_folder_fourds_wrote_is_replaced_and_dvcs_gitignore_kept(tmp_path):
    out = tmp_path / "out"
    with atomic_directory(out) as partial:
        (partial / "first.txt").write_text("1")
    (out / ".gitignore").write_text("/first.txt\n")  # as DVC writes it beside its outputs
    with atomic_directory(out) as partial:
        (partial / "second.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".gitignore", OWNER_MARKER, "second.txt"]
    )


def test_an_empty_folder_or_one_as_dvc_leaves_it_is_claimed(tmp_path):
    """DVC leaves .gitignore files and, where it removed a stage's outputs before running it,
    empty folders (e.g. live/plots of a DVCLive plot)."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "dvc" / "live" / "plots").mkdir(parents=True)
    (tmp_path / "dvc" / ".gitignore").write_text("/metrics.json\n")
    (tmp_path / "dvc" / "live" / ".gitignore").write_text("/plots\n")
    for folder in ("empty", "dvc", "new/nested"):
        claimed = claim_output_directory(tmp_path / folder)
        assert (claimed / OWNER_MARKER).is_file()


def test_a_file_deep_in_an_unmarked_folder_is_the_users(tmp_path):
    (tmp_path / "out" / "a" / "b").mkdir(parents=True)
    (tmp_path / "out" / "a" / "b" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="fourds did not write"):
        claim_output_directory(tmp_path / "out")


def test_a_symlink_to_the_input_is_seen_through(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.mp4").write_bytes(b"video")
    (tmp_path / "alias").symlink_to(tmp_path / "data")
    with pytest.raises(OutputError, match="overlaps the input"):
        claim_output_directory(tmp_path / "alias", (tmp_path / "data",))


def test_temporary_folders_of_a_killed_run_are_removed_by_the_next(tmp_path):
    """Only marked temporaries named after a process that is gone: a live run's, and a folder
    that merely looks like one, stay."""
    dead = 2**22 + 12345  # above the kernel's default pid_max: no such process
    abandoned = tmp_path / f".out.partial-{dead}-abc"
    retired = tmp_path / f".out.old-{dead}-def" / "out"
    live = tmp_path / f".out.partial-{os.getpid()}-ghi"
    unmarked = tmp_path / f".out.partial-{dead}-jkl"
    for folder in (abandoned, retired, live, unmarked):
        folder.mkdir(parents=True)
    for folder in (abandoned, retired, live):
        (folder / OWNER_MARKER).write_text("")
    with atomic_directory(tmp_path / "out") as partial:
        (partial / "done").write_text("")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["out", live.name, unmarked.name])


def _claim_after(barrier, folder: str) -> str:
    barrier.wait()
    try:
        claim_output_directory(folder)
    except OutputError as error:
        return str(error)
    return ""


def test_the_processes_of_one_run_claim_their_new_folder_together(tmp_path):
    """Ranks of a distributed run claim the output folder at the same moment: one's marker,
    appearing between another's look for the marker and its look for files, is not taken for
    a user's file."""
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager, ProcessPoolExecutor(2, mp_context=context) as pool:
        for round_ in range(100):
            barrier = manager.Barrier(2)
            folder = str(tmp_path / f"out-{round_}")
            refused = [e for e in pool.map(_claim_after, [barrier] * 2, [folder] * 2) if e]
            assert not refused, refused
