"""The weights file: the same weights are the same bytes (DVC hashes checkpoint.pt)."""

from __future__ import annotations

import multiprocessing

import torch

from fourds.models.weights import FORMAT, write_payload


def payload() -> dict:
    return {"format": FORMAT, "weights": {"w": torch.arange(6.0).reshape(2, 3)}}


def test_the_same_weights_written_by_two_processes_are_the_same_bytes(tmp_path):
    """The file is written under a temporary name holding the writer's process id; torch names
    the archive's inner folder after a path it is given, so that name must not reach it."""
    write_payload(tmp_path / "here.pt", payload())
    context = multiprocessing.get_context("spawn")
    other = context.Process(target=write_payload, args=(tmp_path / "there.pt", payload()))
    other.start()
    other.join()
    assert other.exitcode == 0
    assert (tmp_path / "there.pt").read_bytes() == (tmp_path / "here.pt").read_bytes()
