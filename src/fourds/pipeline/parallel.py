"""`dvc repro` of a pipeline's stages several at a time, for a repository's own `dvc repro` to
take from DVC's run cache.

DVC runs one repository's stages one after another (`dvc repro` holds the repository's lock).
On one GPU machine a ladder's stages are bound by their Python loops and kernel launches, not
by the GPU: the eager world render, thirty readouts. Here each of `--jobs` workers is a copy of
the repository whose DVC cache is the repository's own (files of a MiB or more hard-linked, the
rest copied: DVC replaces outputs, it never writes into them; the workers check outputs out as
hard links); each worker takes the next stage that is ready, in the order given, and runs
`dvc repro` of it in its copy. A stage is ready when every chosen stage it depends on has run:
DVC then takes those from the run cache into the worker ("is cached - skipping run") before it
runs the stage (`--single-item` where it depends on none). Every stage run so is saved in the
shared run cache, so the repository's own `dvc repro` then says "Stage ... is cached - skipping
run", checks the outputs out and writes dvc.lock with the very hashes the stage ran on.

The chosen stages' other upstream stages must be up to date in the repository (its dvc.lock);
patterns are matched (fnmatch) against the pipeline's stage names as `dvc repro --glob` reads
them (a foreach or matrix stage's name matches all of its items), each stage once, first match
first. A stage whose upstream failed does not run. Files the stages write that DVC does not
track (a run's own records, such as fourds' execution.yaml) are copied back where `--keep`
globs match them and the repository has none. Writes, under --logs: each stage's output
(`<stage>.log`), `parallel_repro.json` (each stage's worker, wall seconds and exit status) and
`ran` (the stages that ran, a line each, in the order given: what to restore). Returns 1 naming
the stages that failed or did not run.

However the coordinator ends, the workers' processes end with it and their copies are removed:
on Ctrl-C (or SIGTERM) it stops them and exits 130 with one line; killed outright, a watchdog
process it started (WATCHDOG) sees it gone, kills every worker's process group and removes the
copies.

Run (in the repository): fourds repro-parallel --jobs 8 pretrain readout fidelity
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import networkx
from dvc.exceptions import NotDvcRepoError
from dvc.repo import Repo

from fourds.errors import ConfigError

LINKED_SIZE = 2**20  # files at least this large are hard-linked into the workers
# Started by the coordinator (argv: its pid, the file of its workers' process groups, the
# workers' folder); when the coordinator is gone without stopping it first, it kills the
# groups and removes the folder.
WATCHDOG = """
import os, shutil, signal, sys, time
coordinator, groups, workers = int(sys.argv[1]), sys.argv[2], sys.argv[3]
while os.getppid() == coordinator:
    time.sleep(0.2)
for group in open(groups).read().split():
    try:
        os.killpg(int(group), signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
shutil.rmtree(workers, ignore_errors=True)
"""
WRITTEN_IN_PLACE = {"dvc.lock", "params.yaml", ".gitignore"}  # always copied
NAME = "fourds repro-parallel"  # the lines it prints start with it


def chosen_stages(repo: Path, patterns: list[str]) -> dict[str, set[str]]:
    """The pipeline's stages that match `patterns` (in the patterns' order, each once) -> the
    chosen stages each depends on, directly or not.

    Raises:
        ConfigError: `repo` is no DVC repository, or a pattern matches no stage.
    """
    try:
        dvc_repo = Repo(str(repo))
    except NotDvcRepoError:
        raise ConfigError(f"{repo} is in no DVC repository: run it in one") from None
    with dvc_repo:
        graph = dvc_repo.index.graph  # an edge from each stage to each stage it depends on
        names = {stage: stage.addressing for stage in graph}
        order: dict[str, None] = {}
        for pattern in patterns:
            matched = [
                name
                for name in names.values()
                if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, f"{pattern}@*")
            ]
            if not matched:
                known = ", ".join(sorted({name.partition("@")[0] for name in names.values()}))
                raise ConfigError(f"{pattern!r} matches no stage of the pipeline ({known})")
            order.update(dict.fromkeys(matched))
        upstream = {
            names[stage]: {names[before] for before in networkx.descendants(graph, stage)}
            for stage in graph
            if names[stage] in order
        }
    return {name: upstream[name] & order.keys() for name in order}


def _link_or_copy(source: str, destination: str) -> None:
    path = Path(source)
    if path.name not in WRITTEN_IN_PLACE and path.stat().st_size >= LINKED_SIZE:
        os.link(source, destination)
    else:
        shutil.copy2(source, destination)


def make_worker(repo: Path, destination: Path, cache: Path) -> Path:
    """A copy of `repo` at `destination` (no DVC temporary files, no cache) using `cache`,
    checking outputs out as hard links (its .dvc/config.local, as `dvc config --local` writes
    it)."""
    shutil.copytree(
        repo,
        destination,
        symlinks=True,
        ignore=lambda folder, names: (
            {"tmp", "cache"} & set(names) if Path(folder).name == ".dvc" else set()
        ),
        copy_function=_link_or_copy,
    )
    local = destination / ".dvc" / "config.local"
    local.write_text(f"[cache]\n    dir = {cache}\n    type = hardlink\n")
    return destination


def cache_dir(repo: Path) -> Path:
    """The repository's DVC cache folder."""
    shown = subprocess.run(
        ["dvc", "cache", "dir"], cwd=repo, check=True, capture_output=True, text=True
    )
    return (repo / shown.stdout.strip()).resolve()


def keep_records(workers: list[Path], repo: Path, patterns: list[str]) -> list[str]:
    """Copy the workers' files matching `patterns` into `repo` where it has none; their paths."""
    kept = []
    for worker in workers:
        for pattern in patterns:
            for source in sorted(worker.glob(pattern)):
                target = repo / source.relative_to(worker)
                if target.exists() or not source.is_file():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
                shutil.copy2(source, partial)
                os.replace(partial, target)
                kept.append(target.relative_to(repo).as_posix())
    return kept


class Groups:
    """The process groups of the workers' commands: listed in a file for the watchdog, killed
    together when the coordinator stops early."""

    def __init__(self, listing: Path):
        self.listing, self.running, self.stopped = listing, set(), False
        self.lock = threading.Lock()
        listing.touch()

    def start(self, command: list[str], cwd: Path, log, env: dict) -> subprocess.Popen | None:
        """`command` in a session (and process group) of its own; None once stopped."""
        with self.lock:
            if self.stopped:
                return None
            process = subprocess.Popen(
                command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )  # fmt: skip
            self.running.add(process.pid)
            with self.listing.open("a") as listing:
                listing.write(f"{process.pid}\n")
            return process

    def end(self, process: subprocess.Popen) -> None:
        with self.lock:
            self.running.discard(process.pid)

    def stop(self) -> None:
        """Start no more commands; kill the groups of those running."""
        with self.lock:
            self.stopped = True
            for group in self.running:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)


def run_until(
    command: list[str], cwd: Path, log, env: dict, seconds: float, groups: Groups
) -> int | str:
    """Run `command` in a session of its own for at most `seconds`: its exit status, "timed
    out" when the deadline stopped it (its whole process group, the stage DVC started, killed)
    or "stopped" when the coordinator was."""
    process = groups.start(command, cwd, log, env)
    if process is None:
        return "stopped"
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return "timed out"
    finally:
        groups.end(process)


class Schedule:
    """The chosen stages, handed out as they become ready (every upstream one run), in order."""

    def __init__(self, upstream: dict[str, set[str]]):
        self.upstream, self.waiting = upstream, list(upstream)
        self.outcome: dict[str, bool] = {}  # stage -> whether it ran
        self.changed = threading.Condition()

    def take(self) -> str | None:
        """The next ready stage (waiting while stages it needs run); None when none is left."""
        with self.changed:
            while self.waiting:
                for stage in self.waiting:
                    needed = [self.outcome.get(before) for before in self.upstream[stage]]
                    if False in needed or None not in needed:
                        self.waiting.remove(stage)
                        if False not in needed:
                            return stage
                        self.outcome[stage] = False  # its upstream failed: it does not run
                        self.changed.notify_all()
                        break
                else:
                    self.changed.wait()
            return None

    def finish(self, stage: str, ran: bool) -> None:
        with self.changed:
            self.outcome[stage] = ran
            self.changed.notify_all()


def run_stages(
    upstream: dict[str, set[str]],
    workers: list[Path],
    logs: Path,
    deadline: float,
    threads: int,
    groups: Groups,
) -> dict[str, dict]:
    """Run the stages over `workers`, a stage at a time each; stage -> its record."""
    schedule = Schedule(upstream)
    records: dict[str, dict] = {}
    lock = threading.Lock()
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}

    def drain(worker: Path) -> None:
        while (stage := schedule.take()) is not None:
            left = deadline - time.time()
            started = time.perf_counter()
            status: int | str = "no time left"
            command = ["dvc", "repro", stage] if upstream[stage] else ["dvc", "repro", "-s", stage]
            if left > 0:
                with open(logs / f"{stage}.log", "w") as log:
                    status = run_until(command, worker, log, environment, left, groups)
            seconds = round(time.perf_counter() - started, 1)
            schedule.finish(stage, status == 0)
            with lock:  # one line at a time
                records[stage] = {"worker": worker.name, "seconds": seconds, "status": status}
                print(f"{NAME}: {stage}: {status} in {seconds} s", flush=True)

    threads_ = [threading.Thread(target=drain, args=(worker,), daemon=True) for worker in workers]
    for thread in threads_:
        thread.start()
    for thread in threads_:
        # in short waits: the kernel may hand Ctrl-C to a worker thread, and Python runs the
        # handler only when the main thread wakes (one long join() slept through a stage)
        while thread.is_alive():
            thread.join(timeout=0.2)
    not_run = {"worker": None, "seconds": 0.0, "status": "upstream failed"}
    return {stage: records.get(stage, not_run) for stage in upstream}


def repro_parallel(
    patterns: list[str], jobs: int, logs: Path, deadline: float, keep: list[str]
) -> int:
    """Run the stages matching `patterns` of the repository in the working directory on `jobs`
    workers until the epoch second `deadline`, each stage's output and the summary under `logs`,
    the run records matching the `keep` globs copied back (module docstring). Returns 0, 1 when
    a stage failed or did not run, 130 when interrupted."""
    repo = Path.cwd().resolve()
    upstream = chosen_stages(repo, patterns)
    jobs = max(1, min(jobs, len(upstream)))
    logs.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix=f"{repo.name}.workers.", dir=repo.parent))
    groups = Groups(scratch / "groups")
    watchdog = subprocess.Popen(
        [sys.executable, "-c", WATCHDOG, str(os.getpid()), str(groups.listing), str(scratch)]
    )
    # Ctrl-C, and SIGTERM as it, stop the stages even where the coordinator was started with
    # Ctrl-C ignored (a script's background job, a parent that ignores it): Python then leaves
    # SIGINT ignored, and the stages would run on
    for ending in (signal.SIGINT, signal.SIGTERM):
        signal.signal(ending, signal.default_int_handler)
    try:
        cache = cache_dir(repo)
        workers = [make_worker(repo, scratch / f"worker{j}", cache) for j in range(jobs)]
        setup = round(time.perf_counter() - started, 1)
        threads = max(1, (os.cpu_count() or 1) // jobs)
        records = run_stages(upstream, workers, logs, deadline, threads, groups)
        keep_records(workers, repo, keep)
    except KeyboardInterrupt:
        groups.stop()
        print(f"{NAME}: interrupted: its stages stopped, nothing restored", file=sys.stderr)
        return 130
    finally:
        groups.stop()
        watchdog.kill()
        watchdog.wait()
        shutil.rmtree(scratch, ignore_errors=True)
    summary = {
        "jobs": jobs,
        "setup_seconds": setup,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "stages": records,
    }
    (logs / "parallel_repro.json").write_text(json.dumps(summary, indent=1) + "\n")
    ran = [stage for stage, record in records.items() if record["status"] == 0]
    (logs / "ran").write_text("".join(f"{stage}\n" for stage in ran))
    failed = [stage for stage, record in records.items() if record["status"] != 0]
    if failed:
        print(f"{NAME}: failed: {' '.join(failed)} (logs in {logs})", file=sys.stderr)
        return 1
    print(f"{NAME}: {len(records)} stages on {jobs} workers in {summary['wall_seconds']} s")
    return 0
