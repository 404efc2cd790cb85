"""The README's "Scoring an encoder on a benchmark" blocks, run as written: a fourds checkpoint
and an official release (a backbone `.npz` in the released layout, from a randomly initialised
model) each train and score readouts on benchmarks in their published layouts, written by the
test where the blocks name them. Between them the blocks use every benchmark format.

The encoders are small (4-frame 16x16 clips: the fourds checkpoint's own shape, and the one the
converter reads from the arrays), so the commands stay those for `cpu_l` and 4DS-B; the
readouts keep the composed ladders' sizes (the 4ds ladder's 1024 wide) and seeds, on a schedule
cut to SHORT_STEPS steps (`short_schedule`): what is checked is the recipe, which a step runs as
a thousand do (the schedules themselves: tests/evaluate)."""

from __future__ import annotations

import json
import math
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from fourds import layout
from fourds.config import ModelConfig
from fourds.config.formats import SYNTHETIC, formats_of
from fourds.config.tasks import TASKS
from fourds.evaluate import readout_clips
from fourds.models.mae import MaskedAutoencoder
from fourds.models.vit import VideoViT, count_parameters
from fourds.models.weights import load_encoder, save_mae
from tests.benchmark_files import export_benchmark, write_kinetics, write_ssv2
from tests.conftest import (
    REPO_ROOT,
    describe_model,
    doc_commands,
    run_fourds,
    tiny_mae_config,
)
from tests.models.test_convert import (
    BACKBONE_ONLY,
    OFFICIAL_SMALL,
    backbone_shapes,
    random_arrays,
    write_npz,
)

# the tasks a public benchmark carries (appearance is read on a catalog world's corpus only)
BENCHMARKED = sorted(task for task in TASKS if formats_of(task) != (SYNTHETIC,))
SECTION = "Scoring an encoder on a benchmark"
FRAMES, SIZE = 4, 16  # both encoders' clips; the composed ladders' are 8x64x64 and 16x224x224
FOLDER_FORMATS = ("scannet", "realestate10k", "box_tracks")
SSV2_SPLITS = {"train": [0, 1, 2, 3, 4, 5], "validation": [2, 3, 1]}
KINETICS_SPLITS = {"train": [0, 1, 2, 3, 4, 5], "val": [0, 4]}
# test clips per format: the tiny corpus' readout-test video (12 frames) gives 3 clips
TEST_CLIPS = dict.fromkeys((*FOLDER_FORMATS, "tapvid"), 3) | {
    "ssv2": len(SSV2_SPLITS["validation"]),
    "kinetics": len(KINETICS_SPLITS["val"]),
}
TRAIN_CLIPS = dict.fromkeys((*FOLDER_FORMATS, "tapvid"), 3) | {"ssv2": 6, "kinetics": 6}
SHORT_STEPS = 20  # each readout's steps, cut from the ladders' 200 to 1000


def short_schedule(tasks) -> str:
    """The params overrides that cut the readouts of `tasks` to SHORT_STEPS steps."""
    return " ".join(f"readouts.{task}.steps={SHORT_STEPS}" for task in tasks)


def words(command: str) -> list[str]:
    """A command line's words, as the shell splits them."""
    return shlex.split(command)


def sources(commands: list[str]) -> dict[str, dict[str, str]]:
    """task -> its `readouts.<task>.source` settings, from the block's `fourds params` line."""
    (compose,) = [command for command in commands if command.startswith("fourds params ")]
    found: dict[str, dict[str, str]] = {}
    for word in words(compose):
        key, _, value = word.partition("=")
        parts = key.split(".")
        if parts[0] == "readouts" and parts[2] == "source":
            found.setdefault(parts[1], {})[parts[3]] = value
    return found


def readouts(commands: list[str]) -> list[dict[str, str]]:
    """The options of each `fourds readout` line of a block."""
    runs = []
    for command in commands:
        if command.startswith("fourds readout "):
            options = words(command)[2:]
            runs.append(dict(zip(options[::2], options[1::2], strict=True)))
    return runs


def write_benchmark(workspace: Path, corpus: Path, source: dict[str, str]) -> None:
    """The benchmark files one task's source names, in the published layout, if not there
    already (two tasks may read the same folders)."""
    format, train, test = source["format"], workspace / source["train"], workspace / source["test"]
    if train.exists() and test.exists():
        return
    if format == "ssv2":  # <root>/labels/{labels,train,validation}.json, <root>/<videos>/
        root = train.parents[1]
        write_ssv2(root, SSV2_SPLITS)
    elif format == "kinetics":  # <root>/annotations/<split>.csv, the videos under <root>
        root = train.parents[1]
        write_kinetics(root, KINETICS_SPLITS)
    else:
        for split, destination in (("readout-train", train), ("readout-test", test)):
            written = export_benchmark(corpus, split, format, workspace / "export")
            destination.parent.mkdir(parents=True, exist_ok=True)
            written.rename(destination)
    for path in (train, test, *([workspace / source["videos"]] if "videos" in source else [])):
        assert path.exists(), f"the README names {path}, not where {format} keeps it"


@pytest.fixture
def workspace(tiny_corpus, tmp_path, monkeypatch):
    """A fresh folder holding the config tree, a tiny fourds encoder at runs/pretrain/cpu_l and
    the official backbone `scaling4d_dist_b.npz`; the current directory. Each test writes the
    benchmarks its block names."""
    shutil.copytree(REPO_ROOT / "experiments", tmp_path / "experiments")
    cfg = ModelConfig(32, 2, 2, 64, (2, 8, 8), qk_norm=True, parallel_blocks=False, bias=True)
    describe_model(tmp_path / "experiments", "cpu_l", cfg)
    describe_model(tmp_path / "experiments", "4ds_b", OFFICIAL_SMALL)
    mae = tiny_mae_config(mask_ratio=0.5)
    model = MaskedAutoencoder(VideoViT(cfg, FRAMES, SIZE), mae)
    (tmp_path / "runs" / "pretrain" / "cpu_l").mkdir(parents=True)
    save_mae(tmp_path / "runs/pretrain/cpu_l/checkpoint.pt", model.state_dict(), cfg, mae, 4, 16)
    write_npz(tmp_path / "scaling4d_dist_b.npz", random_arrays(backbone_shapes(BACKBONE_ONLY)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path


@pytest.fixture
def clip_shapes(monkeypatch):
    """(frames, size) of every split the readout stage loads."""
    shapes = []

    def recording(source, split, shard_dir, keys, frames, size, *budget):
        shapes.append((frames, size))
        return load(source, split, shard_dir, keys, frames, size, *budget)

    load = readout_clips.load_readout_split
    monkeypatch.setattr(readout_clips, "load_readout_split", recording)
    return shapes


def run_commands(workspace: Path, block: list[str], overrides: str) -> list[dict]:
    """Run a block's commands as written, its `fourds params` line with `overrides` added, and
    return the metrics of each task each `fourds readout` line reads out (its --out's
    metrics/<task>.json, with the line's options, and the task as --task, under "options")."""
    commands = [
        command.replace(" --out ", f" {overrides} --out ")
        if command.startswith("fourds params") else command
        for command in block
    ]  # fmt: skip
    for command in commands:
        assert run_fourds(command) == 0, command
    results = []
    for options in readouts(commands):
        for task in tasks_read_out(workspace, options):
            files = layout.ReadoutFiles.inside(workspace / options["--out"], task)
            metrics = json.loads(files.metrics.read_text())
            results.append(metrics | {"options": options | {"--task": task}})
    return results


def tasks_read_out(workspace: Path, options: dict[str, str]) -> list[str]:
    """The tasks a `fourds readout` line reads out: its --task, else every task of its params'
    readout.tasks."""
    if "--task" in options:
        return [options["--task"]]
    return yaml.safe_load((workspace / options["--params"]).read_text())["readout"]["tasks"]


def run_block(workspace: Path, corpus: Path, commands: list[str]) -> list[dict]:
    """Write the block's benchmarks and run it (`run_commands`) on the short schedule."""
    tasks = sources(commands)
    for source in tasks.values():
        write_benchmark(workspace, corpus, source)
    return run_commands(workspace, commands, short_schedule(tasks))


def check_trained(metrics: dict, source: dict[str, str]) -> None:
    """A readout trained on the benchmark's train split and scored on its test split."""
    format = source["format"]
    assert (metrics["source"], metrics["regime"]) == (format, "frozen")
    assert metrics["readout"] == "trained"
    assert metrics["task"] == metrics["options"]["--task"]
    assert metrics["scale"] == metrics["options"]["--scale"]
    assert (metrics["train_clips"], metrics["pretrain_clips"]) == (TRAIN_CLIPS[format], 0)
    assert metrics["test_clips"] == TEST_CLIPS[format]
    assert math.isfinite(metrics[metrics["headline"]])
    assert math.isfinite(metrics["final_train_loss"])
    assert metrics["headline"] in metrics["baseline"]
    record = (Path(metrics["options"]["--out"]) / "run.yaml").read_text()
    assert metrics["options"]["--pretrained"] in record  # the encoder read, hashed
    assert Path(source["test"]).name in record


@pytest.mark.slow
def test_a_fourds_checkpoint_is_scored_on_a_benchmark_per_task_as_written(
    workspace, tiny_corpus, clip_shapes
):
    commands = doc_commands(SECTION, 0)
    tasks = sources(commands)
    results = run_block(workspace, tiny_corpus, commands)
    assert sorted(metrics["task"] for metrics in results) == sorted(tasks) == BENCHMARKED
    for metrics in results:
        assert metrics["options"]["--pretrained"].startswith("runs/pretrain/")
        check_trained(metrics, tasks[metrics["task"]])
    assert set(clip_shapes) == {(FRAMES, SIZE)}  # the checkpoint's clips, not the ladder's 8x64x64
    params = yaml.safe_load((workspace / readouts(commands)[0]["--params"]).read_text())
    assert (
        params["ladder"]["name"] == "embedded"
        and params["readouts"]["depth"]["options"]["range"][1] == 10
    )


@pytest.mark.slow
def test_an_official_release_is_scored_on_a_benchmark_as_written(
    workspace, tiny_corpus, clip_shapes
):
    commands = doc_commands(SECTION, 1)
    tasks = sources(commands)
    assert sorted(tasks) == BENCHMARKED  # the composition names every task's benchmark
    results = run_block(workspace, tiny_corpus, commands)
    convert = words(commands[0])
    converted = convert[convert.index("--out") + 1]
    encoder = load_encoder(converted)
    assert encoder.convention == "official"
    for metrics in results:
        assert metrics["options"]["--pretrained"] == converted
        assert metrics["params"] == count_parameters(encoder)
        check_trained(metrics, tasks[metrics["task"]])
    assert set(clip_shapes) == {(FRAMES, SIZE)}  # the file's clips, not the ladder's 16x224x224
    params = yaml.safe_load((workspace / readouts(commands)[0]["--params"]).read_text())
    assert params["ladder"]["name"] == "4ds" and params["readout"]["regimes"] == ["frozen"]
    assert {settings["width"] for settings in params["readouts"].values()} == {1024}


def test_the_two_blocks_use_every_benchmark_format_and_both_kinds_of_encoder():
    blocks = [doc_commands(SECTION, number) for number in (0, 1)]
    formats = {source["format"] for block in blocks for source in sources(block).values()}
    assert formats == {"scannet", "realestate10k", "tapvid", "box_tracks", "ssv2", "kinetics"}
    fourds, official = blocks
    assert not any(command.startswith("fourds convert") for command in fourds)
    assert official[0].startswith("fourds convert --npz ") and "score=official" in official[1]
