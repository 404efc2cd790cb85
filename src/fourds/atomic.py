"""Safe writes and file digests: the leaf every layer of fourds may use.

Every stage output is written to a temporary sibling and renamed onto its name only when the
write succeeded, so a crash leaves the previous version (or nothing), never a partial file.

Every output folder fourds writes holds a marker file (`OWNER_MARKER`), and a command writes
only into a folder that is new, empty or marked, and that neither is, holds nor lies inside
what the command reads (`claim_output_directory`): a user's own files are never replaced,
deleted or read back as input.

A write that finds its disk full (or the user's quota spent) is reported as a `DiskFullError`
naming the output, what was being written and the space left, after the temporary is removed:
once space is freed, the same command runs again from the start (or, pretraining, from its last
complete checkpoint).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fourds.errors import DiskFullError, OutputError

OWNER_MARKER = ".fourds-output"
DVC_GITIGNORE = ".gitignore"  # DVC writes one beside the outputs it tracks


# What a full disk raises: OSError with one of these numbers, or, from torch's archive writer
# (torch.save, torch.distributed.checkpoint), an error whose message holds one of these ("unexpected
# pos": the writer's position check after a short write).
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
NO_SPACE_MESSAGES = (
    "No space left on device",
    "Disk quota exceeded",
    "file write failed",
    "unexpected pos",
)


def is_out_of_space(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from or while handling, is a write that found
    its disk full."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFullError):
            return True
        if isinstance(current, OSError) and current.errno in NO_SPACE_ERRNOS:
            return True
        if any(message in str(current) for message in NO_SPACE_MESSAGES):
            return True
        # torch.distributed.checkpoint's CheckpointException: each rank's (error, traceback)
        failures = getattr(current, "failures", None)
        if isinstance(failures, dict) and any(
            is_out_of_space(failure[0]) for failure in failures.values()
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def free_space(path: str | Path) -> str:
    """The space left on the disk that holds `path` (or its nearest existing parent), in MiB."""
    existing = Path(os.path.abspath(path))
    while not existing.exists():
        existing = existing.parent
    return f"{shutil.disk_usage(existing).free / 2**20:.1f} MiB"


@contextlib.contextmanager
def reporting_full_disk(path: str | Path, what: str) -> Iterator[None]:
    """Turn a write inside the block that finds its disk full into a one-line DiskFullError
    naming `path`, `what` was being written and the free space; other errors pass unchanged."""
    try:
        yield
    # an inner block's DiskFullError too (the outer output is named), and torch's
    # CheckpointException, a BaseException; an interrupt or exit passes
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt | SystemExit | GeneratorExit) or not is_out_of_space(
            error
        ):
            raise
        raise DiskFullError(
            f"no space left on the disk of {path} while writing {what} ({free_space(path)} "
            "free): free some space, then run the same command again"
        ) from None


@contextlib.contextmanager
def atomic_path(path: str | Path, what: str = "it") -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` only if the block succeeds.

    A crash or an exception leaves `path` as it was (absent or the previous version); a full
    disk raises DiskFullError (see `reporting_full_disk`; `what` names the content).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        with reporting_full_disk(path, what):
            yield partial
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


@contextlib.contextmanager
def atomic_directory(path: str | Path, what: str = "its files") -> Iterator[Path]:
    """Yield a new temporary sibling directory of `path` (holding only the owner marker); if
    the block succeeds, it replaces `path` whole (whatever `path` held before is removed, DVC's
    .gitignore aside, which is carried over).

    Raises OutputError (before anything is written) when `path` is not fourds' own to
    replace (see `check_output_directory`), DiskFullError when the disk fills (`what` names the
    content; see `reporting_full_disk`).

    A crash or an exception inside the block leaves `path` as it was; a crash during the swap
    leaves the previous directory or none, never a mix of old and new files. The temporary
    folders a killed run left beside `path` are removed by the next run (only marked ones whose
    process is gone).
    """
    path = Path(path)
    check_output_directory(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_temporaries(path)
        partial = Path(tempfile.mkdtemp(prefix=_temporary_prefix(path, "partial"), dir=path.parent))
    except OSError as error:
        raise OutputError(f"cannot write the output folder {path}: {error.strerror}") from None
    try:
        with reporting_full_disk(path, what):
            _mark(partial)
            yield partial
            if (path / DVC_GITIGNORE).is_file():
                shutil.copy2(path / DVC_GITIGNORE, partial / DVC_GITIGNORE)
        if path.exists():
            retired = Path(tempfile.mkdtemp(prefix=_temporary_prefix(path, "old"), dir=path.parent))
            os.replace(path, retired / path.name)
            os.replace(partial, path)
            shutil.rmtree(retired)
        else:
            os.replace(partial, path)
    finally:
        if partial.exists():
            shutil.rmtree(partial)


@contextlib.contextmanager
def scratch_directory(path: str | Path, what: str = "arrays spilled to disk") -> Iterator[Path]:
    """Yield a new marked temporary sibling folder of the output folder `path`, for files a
    command needs only while it runs (memory-mapped arrays); removed when the block ends, however
    it ends. The scratch folders a killed run left beside `path` are removed by the next run
    (only marked ones whose process is gone), as `atomic_directory`'s temporaries.

    Raises:
        OutputError: the folder cannot be created.
        DiskFullError: its disk fills (`what` names the content; see `reporting_full_disk`).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_temporaries(path)
        scratch = Path(tempfile.mkdtemp(prefix=_temporary_prefix(path, "scratch"), dir=path.parent))
        _mark(scratch)
    except OSError as error:
        raise OutputError(
            f"cannot write a scratch folder beside {path}: {error.strerror}"
        ) from None
    try:
        with reporting_full_disk(scratch, what):
            yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _temporary_prefix(path: Path, kind: str) -> str:
    """`.<name>.<kind>-<pid>-`: the process that made a temporary sibling of `path`."""
    return f".{path.name}.{kind}-{os.getpid()}-"


def _remove_abandoned_temporaries(path: Path) -> None:
    """Remove the temporary siblings of `path` that a killed process left behind: those named
    by `_temporary_prefix` after a process that no longer runs, holding the owner marker."""
    for kind, marked in (("partial", "."), ("old", path.name), ("scratch", ".")):
        for folder in path.parent.glob(f".{glob.escape(path.name)}.{kind}-*-*"):
            pid = folder.name.removeprefix(f".{path.name}.{kind}-").split("-")[0]
            abandoned = pid.isdigit() and not _running(int(pid))
            if abandoned and (folder / marked / OWNER_MARKER).is_file():
                shutil.rmtree(folder)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process
    return True


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write `data` as indented JSON, atomically. Used for every metrics file."""
    with atomic_path(path) as partial:
        partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """A file's bytes hashed with `algorithm` (hashlib's name: sha256, or md5 as DVC records
    files), hex."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _resolved(path: str | Path) -> Path:
    return Path(os.path.realpath(path))


def _check_apart(path: str | Path, inputs: tuple[str | Path, ...]) -> Path:
    """`path` resolved; OutputError if it is, holds or lies inside one of `inputs` (folders or
    files a command reads). Symbolic links are resolved before comparing."""
    out = _resolved(path)
    for source in inputs:
        read = _resolved(source)
        holds = read.is_relative_to(out)  # the same path, or an input inside the output
        inside = read.is_dir() and out.is_relative_to(read)
        if holds or inside:
            raise OutputError(
                f"output {path} overlaps the input {source}: writing there would replace or "
                "read back the input; choose an output outside it"
            )
    return out


def check_output_file(
    path: str | Path, inputs: tuple[str | Path, ...], is_own: Callable[[Path], bool]
) -> None:
    """Raise OutputError unless the file `path` may be written: it is apart from `inputs`, is
    not a folder, and if it exists `is_own` recognises it as a file fourds wrote; then create
    its parent folder (OutputError if that cannot be done)."""
    out = _check_apart(path, inputs)
    if out.is_dir():
        raise OutputError(f"output {path} is a folder; name the file to write")
    if out.exists() and not is_own(out):
        raise OutputError(f"output {path} exists and was not written by fourds; choose a new name")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror}") from None


def check_output_directory(path: str | Path, inputs: tuple[str | Path, ...] = ()) -> None:
    """Raise OutputError unless `path` may receive a command's outputs.

    Refused: `path` is, holds or lies inside one of `inputs` (folders or files the command
    reads); `path` exists and is not a folder; `path` is a folder without fourds' owner marker
    that holds any file (DVC's .gitignore files and empty folders, which DVC leaves where it
    removed outputs, aside).
    """
    out = _check_apart(path, inputs)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {path} exists and is not a folder; choose another path")
    if out.is_dir() and not (out / OWNER_MARKER).is_file() and _holds_files(out):
        raise OutputError(
            f"output folder {path} holds files fourds did not write (no {OWNER_MARKER} marker); "
            "choose a new or empty folder"
        )


def _holds_files(folder: Path) -> bool:
    """Whether anything under `folder` is a file or a link, DVC's .gitignore files and fourds'
    own marker aside (the processes of one run claim their folder together: one may mark it
    between another's look for the marker and its look for files)."""
    return any(
        entry.is_symlink() or not (entry.is_dir() or entry.name in (DVC_GITIGNORE, OWNER_MARKER))
        for entry in folder.rglob("*")
    )


def claim_output_directory(path: str | Path, inputs: tuple[str | Path, ...] = ()) -> Path:
    """Check `path` (as `check_output_directory`), create it and mark it as fourds' own.

    Raises:
        OutputError: `path` is refused, or cannot be created or written.
    """
    check_output_directory(path, inputs)
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        _mark(path)
    except OSError as error:
        raise OutputError(f"cannot write the output folder {path}: {error.strerror}") from None
    return path


def _mark(folder: Path) -> None:
    marker = folder / OWNER_MARKER
    if not marker.is_file():
        marker.write_text("written by fourds: a fourds command may replace this folder\n")
