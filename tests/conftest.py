"""Shared fixtures: the repository root and small rendered corpora."""

from __future__ import annotations

from pathlib import Path

import pytest

from fourds.data.corpus import WorldSpec, write_corpus

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_WORLD = WorldSpec(
    seed=7,
    frames=12,
    size=32,
    fps=12,
    videos={"pretrain": 2, "readout-train": 1, "readout-test": 1},
)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A 4-video corpus of 12 frames at 32x32, rendered once per test session."""
    root = tmp_path_factory.mktemp("corpus")
    write_corpus(root, TINY_WORLD)
    return root
