"""Shared fixtures: the repository root, small rendered corpora and their curated shards, and a
recorder of the dtypes attention receives."""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import struct
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from fourds.cli import main
from fourds.config import CurateConfig, MAEConfig, ModelConfig
from fourds.data.corpus import WorldSpec, write_corpus
from fourds.data.curate import curate
from fourds.models import attention as attention_module
from fourds.startup import collector_paused, freeze_where_no_gpu

REPO_ROOT = Path(__file__).resolve().parents[1]


def sh(*command: str, cwd: Path) -> str:
    """Run `command` in `cwd`; its stdout, or a failed assertion with its output."""
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def copy_tracked_files(dest: Path, skip: tuple[str, ...] = ()) -> None:
    """Copy the files git tracks in this repository into `dest`, but those whose path starts
    with one of `skip`."""
    tracked = sh("git", "ls-files", "-z", cwd=REPO_ROOT).split("\0")
    for name in filter(None, tracked):
        if not name.startswith(skip) and (REPO_ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, dest / name)


def doc_pages() -> list[str]:
    """README.md and every page of docs/ (not docs/research/, the study log: a record of what
    was run, not instructions), as paths relative to the repository."""
    pages = sorted(path.relative_to(REPO_ROOT) for path in (REPO_ROOT / "docs").glob("*.md"))
    return ["README.md", *(str(page) for page in pages)]


@dataclass(frozen=True)
class DocBlock:
    """A fenced block of a page (README.md or docs/*.md): the page, the heading it sits
    directly under (its title, of any level), the fence's language ('' for none) and the lines
    between the fences."""

    page: str
    section: str
    language: str
    text: str


def doc_blocks(page: str | None = None) -> list[DocBlock]:
    """Every fenced block of `page`, in order; of every page (README.md first) without one."""
    if page is None:
        return [block for name in doc_pages() for block in doc_blocks(name)]
    blocks, section, fence, body = [], "", None, []
    for line in (REPO_ROOT / page).read_text().splitlines(keepends=True):
        if fence is not None:
            if line.startswith("```"):
                blocks.append(DocBlock(page, section, fence, "".join(body)))
                fence = None
            else:
                body.append(line)
        elif line.startswith("```"):
            fence, body = line[3:].strip(), []
        elif line.startswith("#"):
            section = line.lstrip("#").strip()
    return blocks


def command_lines(block: str) -> list[str]:
    """The command lines of a bash block: lines continued with a backslash joined, comment
    lines left out and comments after two spaces cut off."""
    lines = block.replace("\\\n", " ").splitlines()
    commands = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [line.split("  #")[0].strip() for line in commands]


def page_of(section: str) -> str:
    """The one page with bash blocks directly under the heading `section`."""
    pages = {b.page for b in doc_blocks() if b.section == section and b.language == "bash"}
    assert len(pages) == 1, f"bash blocks under {section!r} on {sorted(pages) or 'no page'}"
    return pages.pop()


def doc_commands(section: str, block: int = 0, page: str | None = None) -> list[str]:
    """The command lines of bash block number `block` (0: the first) directly under the heading
    `section` of `page` (README.md or docs/*.md; by default the one page with that heading)."""
    page = page or page_of(section)
    texts = [
        found.text
        for found in doc_blocks(page)
        if found.section == section and found.language == "bash"
    ]
    return command_lines(texts[block])


def run_fourds(command: str) -> int:
    """Run a `fourds ...` command line in this process; its exit status."""
    program, *arguments = shlex.split(command)
    assert program == "fourds", command
    return main(arguments)


TINY_WORLD = WorldSpec(
    seed=7,
    frames=12,
    size=32,
    fps=12,
    videos={"pretrain": 2, "readout-train": 1, "readout-test": 1},
)


def flip_tensor_byte(path: Path) -> None:
    """Flip one byte in the middle of the largest tensor stored in the torch file `path` (its
    data/ member of the zip archive): damage that loading alone does not notice."""
    with zipfile.ZipFile(path) as archive:
        member = max(
            (info for info in archive.infolist() if "/data/" in info.filename),
            key=lambda info: info.file_size,
        )
    with open(path, "r+b") as handle:
        handle.seek(member.header_offset + 26)  # the local header's name and extra lengths
        name_length, extra_length = struct.unpack("<HH", handle.read(4))
        offset = member.header_offset + 30 + name_length + extra_length + member.file_size // 2
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def one_error_line(stderr: str, command: str) -> str:
    """The error of `fourds <command>`, checked to be its stderr's one line after any progress
    bars, with no traceback."""
    assert "Traceback" not in stderr, stderr
    (error,) = [line for line in stderr.splitlines() if line.startswith(f"fourds {command}:")]
    assert stderr.endswith(error + "\n"), stderr
    return error


def describe_model(experiments: Path, name: str, cfg: ModelConfig) -> None:
    """Write experiments/model/<name>.yaml of a copied config tree as `cfg`: the tree then
    describes the small encoder a test stands in for `name` with (a readout refuses a
    checkpoint whose architecture is not its scale's)."""
    fields = {**dataclasses.asdict(cfg), "tubelet": list(cfg.tubelet)}
    (experiments / "model" / f"{name}.yaml").write_text(yaml.safe_dump(fields, sort_keys=False))


def tiny_model_config(**changes) -> ModelConfig:
    """A small encoder config (width 32, 2 blocks, tubelet 2x4x4) for model tests; keyword
    arguments override fields."""
    fields = dict(
        width=32,
        depth=2,
        heads=4,
        mlp_dim=64,
        tubelet=(2, 4, 4),
        qk_norm=False,
        parallel_blocks=False,
        bias=True,
    )
    return ModelConfig(**{**fields, **changes})


def tiny_mae_config(**changes) -> MAEConfig:
    """A small decoder config for model tests; keyword arguments override fields."""
    fields = dict(
        mask_ratio=0.75,
        mask_type="random",
        norm_pix_loss=False,
        decoder="mae_st",
        decoder_width=16,
        decoder_depth=1,
        decoder_heads=2,
        query_blocks=1,
        query_stride=(1, 2, 2),
        residual_init="xavier",
    )
    return MAEConfig(**{**fields, **changes})


PIPELINE_TESTS = "tests/test_pipeline.py"


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto` (pyproject's addopts): a worker per core and one more. A test waits on the
    processes it starts (git, DVC, the stages) for part of its time; the extra worker keeps the
    cores busy then (the suite in 668 s against 712 s with a worker per core, on 2 cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) + 1


def pytest_configure(config):
    """Under pytest-xdist (pyproject's addopts) each worker, and the commands it runs, takes
    one thread: the workers share the machine. Stages run in the worker's process set their
    params' `runtime.threads` (two for the embedded ladder); the worker keeps to one, since two
    threads on a core that another worker is using wait on each other at every operation
    (several times slower). Subprocess stages run the smoke ladder, which asks for one.

    DVC's usage reports are off for every command the tests run: this repository's .dvc/config
    turns them off, but the repositories the tests `dvc init` would send them, a daemon process
    after each command (~0.4 CPU-s)."""
    os.environ["DVC_NO_ANALYTICS"] = "1"
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)
        torch.set_num_threads = keep_one_thread
    if not torch.cuda.is_available():  # with a GPU, the first backward starts them anyway
        start_autograd()


def start_autograd() -> None:
    """One backward pass before any test. Autograd decides once, at a process's first backward
    pass, whether to start its device threads, and after a torch.compile or an FSDP-sharded
    module it starts them even where there is no GPU; torch then refuses autograd in that
    process's forks (a readout's seeds side by side, in a later test of the same worker).
    Started here, on a machine without a GPU, it starts none."""
    torch.ones(1, requires_grad=True).sum().backward()


def keep_one_thread(threads: int) -> None:
    """torch.set_num_threads in a pytest-xdist worker: the worker keeps its one thread."""


@pytest.hookimpl(hookwrapper=True)
def pytest_collection(session):
    """Tests collected with the cyclic collector paused, and what their modules hold frozen
    then, as `fourds.startup.import_frozen` does for a command: the collections the tests cause
    skip it."""
    with collector_paused():
        yield
        freeze_where_no_gpu()


def pytest_collection_modifyitems(items):
    """The end-to-end pipeline tests first, so that one worker starts on the longest file while
    the others share every other file; then the other files with `slow` tests, then the rest
    (each group in its order): the workers take the long files early and end on short ones,
    together (the last three to end had 74 s between them when the long files came in
    alphabetical order)."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}

    def group(item: pytest.Item) -> int:
        return 0 if item.nodeid.split("::")[0] == PIPELINE_TESTS else 1 + (item.path not in slow)

    items.sort(key=group)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A 4-video corpus of 12 frames at 32x32, rendered once per test session."""
    root = tmp_path_factory.mktemp("corpus")
    write_corpus(root, TINY_WORLD)
    return root


@pytest.fixture(scope="session")
def tiny_shards(tiny_corpus, tmp_path_factory) -> Path:
    """Curated shards of the tiny corpus: 4-frame 16x16 readout clips, 12-frame segments."""
    root = tmp_path_factory.mktemp("shards")
    curate(tiny_corpus, root, CurateConfig(4, 2, 12, 16, 8, 0.0, "center"))
    return root / "shards"


@pytest.fixture
def attention_dtypes(monkeypatch):
    """The dtypes of (q, k, v) at every attention call."""
    seen = []

    def recording(q, k, v, backend="sdpa"):
        seen.append((q.dtype, k.dtype, v.dtype))
        return original(q, k, v, backend)

    original = attention_module.attention
    monkeypatch.setattr(attention_module, "attention", recording)
    return seen
