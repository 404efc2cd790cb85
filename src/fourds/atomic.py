"""Atomic writes and file digests: the leaf every layer of fourds may use.

Every stage output is written to a temporary sibling and renamed onto its name only when the
write succeeded, so a crash leaves the previous version (or nothing), never a partial file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` only if the block succeeds.

    A crash or an exception leaves `path` as it was (absent or the previous version).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a new empty temporary sibling directory of `path`; if the block succeeds, it
    replaces `path` whole (whatever `path` held before is removed).

    A crash or an exception inside the block leaves `path` as it was; a crash during the swap
    leaves the previous directory or none, never a mix of old and new files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    try:
        yield partial
        if path.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, retired / path.name)
            os.replace(partial, path)
            shutil.rmtree(retired)
        else:
            os.replace(partial, path)
    finally:
        if partial.exists():
            shutil.rmtree(partial)


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write `data` as indented JSON, atomically. Used for every metrics file."""
    with atomic_path(path) as partial:
        partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
