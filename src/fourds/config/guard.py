"""The params file a stage runs with, held unchanged while it runs.

`dvc repro` locks the params.yaml it finds when a stage's command ends, beside the outputs the
command wrote. A params.yaml rewritten while the stage ran (`fourds params ... --out
params.yaml`; a `dvc exp run -S` that DVC refuses because the repository is busy still rewrites
it) would be locked as what produced outputs it never produced. So a stage (`guarded`, which
fourds.config.operative.stage enters) hashes its params file as it starts, and checks it again
before its run record is written (`params_digest`, which fourds.records calls) and as it ends;
a file that no longer holds the bytes it started with fails the stage with ParamsChangedError,
one line, after the outputs this run wrote are withdrawn from its folder.

Withdrawn: every file under the stage's output folder that the run wrote or replaced (a file
whose inode or modification time is not the one it had as the stage started), in a folder
fourds owns (`fourds.atomic.OWNER_MARKER`) and only there; the folders it empties go too. Kept:
the marker, DVC's .gitignore, every file the run did not touch, and the folders a later run
resumes from or that log this one (`KEPT`, no DVC output: .dvcignore hides them).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from fourds.atomic import DVC_GITIGNORE, OWNER_MARKER, file_digest
from fourds.errors import ParamsChangedError

# pretraining's resumable checkpoints, DVCLive's logs, the launcher's (fourds.stages.pretrain)
KEPT = ("resume", "live", "slurm")

_held: tuple[Path, str] | None = None  # the params file of the stage running here, its sha256


@contextlib.contextmanager
def guarded(params_path: str | Path, out_dir: str | Path) -> Iterator[None]:
    """Run a stage's block with `params_path` held: hashed now, checked when the block ends;
    on ParamsChangedError (here or from `params_digest` inside the block) the files the block
    wrote under `out_dir` are withdrawn (module docstring) before it propagates."""
    global _held
    out_dir = Path(out_dir)
    before = _identities(out_dir)
    _held = (Path(params_path), file_digest(params_path))
    try:
        yield
        params_digest(params_path)
    except ParamsChangedError:
        _withdraw(out_dir, before)
        raise
    finally:
        _held = None


def params_digest(params_path: str | Path) -> str:
    """The sha256 of the params file a run record names: inside a stage, the one its file held
    as the stage started; elsewhere, the file's now.

    Raises:
        ParamsChangedError: inside a stage, the file no longer holds those bytes.
    """
    if _held is None:
        return file_digest(params_path)
    path, digest = _held
    try:
        unchanged = file_digest(path) == digest
    except FileNotFoundError:
        unchanged = False
    if not unchanged:
        raise ParamsChangedError(
            f"{path} changed while the stage ran: nothing recorded; run it again"
        )
    return digest


def _identities(out_dir: Path) -> dict[Path, tuple[int, int] | None]:
    """Each file under `out_dir` that a withdrawal may remove -> `_identity`."""
    return {path: _identity(path) for path in _withdrawable(out_dir)}


def _identity(path: Path) -> tuple[int, int] | None:
    """(inode, modification time in ns) of `path`; None once it is gone (another process of
    the same run, writing or withdrawing, may replace or remove it)."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_mtime_ns


def _withdrawable(out_dir: Path) -> list[Path]:
    """The files and links under `out_dir`, save the marker, DVC's .gitignore and `KEPT`; none
    where fourds does not own the folder (a folder without the marker holds no file a stage
    wrote, and is not walked: it may be a user's large one, which the stage will refuse)."""
    if not (out_dir / OWNER_MARKER).is_file():
        return []
    return [
        path
        for path in out_dir.rglob("*")
        if (path.is_symlink() or not path.is_dir())
        and path.name not in (OWNER_MARKER, DVC_GITIGNORE)
        and path.relative_to(out_dir).parts[0] not in KEPT
    ]


def _withdraw(out_dir: Path, before: dict[Path, tuple[int, int] | None]) -> None:
    """Remove the files under `out_dir` (`_withdrawable`) written or replaced since `before`
    (`_identities`), then the folders that leaves empty."""
    for path in _withdrawable(out_dir):
        if before.get(path) != _identity(path):
            path.unlink(missing_ok=True)
            for folder in path.parents[: len(path.relative_to(out_dir).parts) - 1]:
                with contextlib.suppress(OSError):  # not empty: kept
                    folder.rmdir()
