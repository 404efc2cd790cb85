"""A pytest plugin that records the CPU seconds each test costs, from its setup to its teardown:
its process's own (user and system) and those of the child processes it waited for (git, DVC,
the stages, the benchmark scripts).

Where the workers outnumber the cores, a test's wall seconds say as much about what ran beside
it as about the test; its CPU seconds do not, and their sum is what the cores had to do.
benchmarks/suite.py loads it (PYTEST_PLUGINS=cpu_per_test, this folder on the path); each
process appends a line of JSON per test to a file of its own in the folder FOLDER names.
Processes a test starts and does not wait for (DVC's queue workers) are not counted.
"""

from __future__ import annotations

import collections
import json
import os
import resource
import time
from pathlib import Path

import pytest

FOLDER = "FOURDS_CPU_PER_TEST"  # the environment variable naming the records' folder


def cpu_seconds() -> tuple[float, float]:
    """(this process's CPU seconds, those of the children it has waited for), user + system."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    folder = os.environ.get(FOLDER)
    own, children = cpu_seconds()
    started = time.time()
    yield
    if folder:
        own_after, children_after = cpu_seconds()
        record = {
            "test": item.nodeid,
            "own": round(own_after - own, 3),
            "children": round(children_after - children, 3),
            "start": round(started, 3),
            "wall": round(time.time() - started, 3),
        }
        with (Path(folder) / f"cpu-{os.getpid()}.jsonl").open("a") as file:
            file.write(json.dumps(record) + "\n")


def read_records(folder: Path) -> list[dict]:
    """Every record the plugin wrote in `folder`, each with the process that ran it ("pid")."""
    return [
        {**json.loads(line), "pid": int(path.stem.split("-")[1])}
        for path in sorted(folder.glob("cpu-*.jsonl"))
        for line in path.open()
    ]


def cost(record: dict) -> float:
    """A record's CPU seconds: its process's own and its waited-for children's."""
    return record["own"] + record["children"]


def summary(records: list[dict], top: int = 15) -> dict:
    """The records' CPU seconds: in all, by test file and by test (the `top` costliest of each,
    costliest first)."""
    by_file = collections.defaultdict(lambda: {"seconds": 0.0, "tests": 0})
    for record in records:
        entry = by_file[record["test"].split("::")[0]]
        entry["seconds"] += cost(record)
        entry["tests"] += 1
    files = sorted(by_file.items(), key=lambda item: -item[1]["seconds"])[:top]
    tests = sorted(records, key=cost, reverse=True)[:top]
    return {
        "total_seconds": round(sum(map(cost, records)), 1),
        "workers": workers(records),
        "by_file": [
            {"file": name, "seconds": round(entry["seconds"], 1), "tests": entry["tests"]}
            for name, entry in files
        ],
        "by_test": [
            {"test": r["test"], "seconds": round(cost(r), 1), "wall": r["wall"]} for r in tests
        ],
    }


def workers(records: list[dict]) -> list[dict]:
    """Each process that ran tests, the busiest first: its tests, the wall seconds it spent in
    them, and when it finished its last one, in seconds from the first test's start (where the
    busiest finishes well after the others, the cores idled at the end)."""
    start = min(record["start"] for record in records)
    by_pid = collections.defaultdict(list)
    for record in records:
        by_pid[record["pid"]].append(record)
    rows = [
        {
            "tests": len(ran),
            "busy_seconds": round(sum(record["wall"] for record in ran), 1),
            "done_at_seconds": round(max(end(record) for record in ran) - start, 1),
        }
        for ran in by_pid.values()
    ]
    return sorted(rows, key=lambda row: -row["busy_seconds"])


def end(record: dict) -> float:
    """When a record's test ended (epoch seconds)."""
    return record["start"] + record["wall"]
