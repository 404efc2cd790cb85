"""The pin of a curated folder: DVC's md5 of its content, checked before curation reads it.

`dvc repro` re-pins a tracked folder whose workspace copy changed: it rewrites `data.dvc` to
the md5 of what the workspace holds, even with `frozen: true` (treeverse/dvc#5292), so a
corrupted or edited corpus would be curated without a word. `curate.pinned_data` maps a folder,
as `curate.data` names it (from the repository: params.yaml's folder), to the md5 DVC gives its
content (the `md5` of its .dvc file, copied into params, which DVC does not rewrite); the curate
stage checks the folder against it before it reads or writes anything. A folder the map does
not name is curated as it is.

The digest is DVC 3's md5 of a folder (`hash: md5`): the md5 of the JSON listing
`[{"md5": <md5 of the file's bytes>, "relpath": <its path under the folder, with />}, ...]`,
sorted by relpath, written by `json.dumps(..., sort_keys=True)`, with ".dir" appended; every
file under the folder counts (a `.dvcignore` inside the folder is not honoured).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from fourds.atomic import file_digest
from fourds.errors import PinError


def folder_listing(folder: str | Path) -> dict[str, str]:
    """Every file under `folder` (its path relative to `folder`, with /) -> its md5."""
    folder = Path(folder)
    listing = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root, name)
            listing[path.relative_to(folder).as_posix()] = file_digest(path, "md5")
    return listing


def listing_digest(listing: dict[str, str]) -> str:
    """DVC's md5 of a folder whose files are `listing` (relpath -> md5): "<md5>.dir"."""
    entries = [{"md5": listing[relpath], "relpath": relpath} for relpath in sorted(listing)]
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


def folder_digest(folder: str | Path) -> str:
    """DVC's md5 of `folder`'s content, equal to the `md5` `dvc add` writes in its .dvc file."""
    return listing_digest(folder_listing(folder))


def pin_of(folder: str | Path, pins: dict[str, str], root: str | Path) -> str | None:
    """The digest `pins` holds for `folder` (a path from the working directory), or None.

    `pins` maps a folder, as curate.data names it (relative to `root`, the repository: the
    folder of params.yaml, where DVC runs the stage; or absolute), to its digest; the folder is
    found however it is written (`data`, `./data`, its absolute path).
    """
    target = Path(folder).resolve()
    for name, digest in pins.items():
        if Path(root, name).resolve() == target:
            return digest
    return None


def cached_listing(digest: str) -> dict[str, str] | None:
    """The listing (relpath -> md5) of the folder digest `digest` from the DVC cache of the
    repository around the working directory; None where there is no repository or the cache
    does not hold it."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo() as repo:
            path = Path(repo.cache.local.oid_to_path(digest))
    except DvcException:
        return None
    try:
        entries = json.loads(path.read_text())
        return {entry["relpath"]: entry["md5"] for entry in entries}
    except (OSError, ValueError, TypeError, KeyError):
        return None


def difference(folder: str | Path, listing: dict[str, str], pinned: dict[str, str]) -> str:
    """The first file (by path) in which `listing` differs from `pinned`, and how many more."""
    changed = {path for path in listing.keys() & pinned.keys() if listing[path] != pinned[path]}
    states = {path: "differs" for path in changed}
    states.update({path: "is missing" for path in pinned.keys() - listing.keys()})
    states.update({path: "is not in the pin" for path in listing.keys() - pinned.keys()})
    first = min(states)
    more = f" (and {len(states) - 1} more)" if len(states) > 1 else ""
    return f"{Path(folder, first).as_posix()} {states[first]}{more}"


def check_pinned(folder: str | Path, pins: dict[str, str], root: str | Path = ".") -> None:
    """Refuse `folder` if `pins` pins it and its content is not the pinned one (`root`: the
    folder the pins' relative paths start from, see pin_of).

    Raises:
        PinError: one line naming the folder, both digests, the first file that differs (where
            the DVC cache holds the pinned listing) and how to restore the pinned content.
    """
    pinned = pin_of(folder, pins, root)
    if pinned is None or not Path(folder).is_dir():  # curation names a missing folder itself
        return
    listing = folder_listing(folder)
    actual = listing_digest(listing)
    if actual == pinned:
        return
    pinned_files = cached_listing(pinned)
    which = f"; {difference(folder, listing, pinned_files)}" if pinned_files else ""
    name = Path(folder).as_posix()
    raise PinError(
        f"{name}: its content (md5 {actual}) is not the pinned {pinned} (curate.pinned_data)"
        f"{which}; nothing was curated: restore it with `git checkout {name}.dvc && "
        f"dvc checkout {name}.dvc`, or pin the new content in curate.pinned_data"
    )
