"""Jobs side by side in forked processes (fourds.evaluate.forked)."""

from __future__ import annotations

import os

import pytest
import torch

from fourds.evaluate.forked import side_by_side


def test_each_job_runs_in_its_own_process_at_the_threads_given_and_returns_in_order():
    here = os.getpid()
    shared = torch.arange(6.0)  # the parent's memory, read in the children

    def job(index):
        return lambda: (index, os.getpid(), torch.get_num_threads(), shared[index] * 2)

    results = side_by_side([job(index) for index in range(3)], threads=1)
    assert [index for index, *_ in results] == [0, 1, 2]
    assert len({pid for _, pid, *_ in results} | {here}) == 4
    assert all(threads == 1 for *_, threads, _ in results)
    assert [float(value) for *_, value in results] == [0.0, 2.0, 4.0]


def test_a_jobs_exception_is_raised_in_the_parent():
    def failing():
        raise ValueError("seed 1: no clips")

    with pytest.raises(ValueError, match="seed 1: no clips"):
        side_by_side([lambda: 1, failing], threads=1)


def test_a_process_that_dies_without_a_result_is_one_error():
    with pytest.raises(RuntimeError, match="exit code 3"):
        side_by_side([lambda: os._exit(3)], threads=1)
