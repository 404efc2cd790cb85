"""The order the suite hands its files to the workers (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from tests.conftest import PIPELINE_TESTS, pytest_collection_modifyitems


def item(path: str, name: str, slow: bool = False) -> SimpleNamespace:
    """A collected test as the hook reads it: its id, its file, its markers."""
    marker = SimpleNamespace(name="slow") if slow else None
    return SimpleNamespace(
        nodeid=f"{path}::{name}",
        path=Path(path),
        get_closest_marker=lambda wanted: marker if wanted == "slow" else None,
    )


def test_the_pipeline_file_comes_first_then_files_with_slow_tests_then_the_rest():
    items = [
        item("tests/a.py", "test_quick"),
        item("tests/b.py", "test_quick"),
        item("tests/b.py", "test_long", slow=True),  # one slow test moves its whole file
        item("tests/a.py", "test_other"),
        item(PIPELINE_TESTS, "test_stage"),
        item("tests/c.py", "test_long", slow=True),
    ]
    pytest_collection_modifyitems(items)
    assert [each.nodeid for each in items] == [
        f"{PIPELINE_TESTS}::test_stage",
        "tests/b.py::test_quick",
        "tests/b.py::test_long",
        "tests/c.py::test_long",
        "tests/a.py::test_quick",  # the rest keeps its order
        "tests/a.py::test_other",
    ]
