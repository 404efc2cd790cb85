"""The readout stage end to end on a tiny encoder: every task, both regimes, cached features."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fourds import layout
from fourds.cli import main
from fourds.config import CurateConfig, ModelConfig, load_params
from fourds.data import spill
from fourds.data.curate import curate
from fourds.data.readers.perception_test import read_point_tracks
from fourds.data.shards import load_split
from fourds.data.spill import HostBudget
from fourds.evaluate import readout_seeds
from fourds.evaluate.forked import side_by_side
from fourds.evaluate.metrics import depth_image_metrics
from fourds.evaluate.perception_test import OFFICIAL, video_metrics
from fourds.evaluate.precision import frozen
from fourds.evaluate.readout import Features, MappedFeatures
from fourds.models.convert import load_readout
from fourds.models.mae import MaskedAutoencoder
from fourds.models.readout import readout_block_count
from fourds.models.vit import VideoViT, count_parameters
from fourds.models.weights import load_encoder, save_mae
from fourds.report.bootstrap import read_clip_scores
from tests.benchmark_files import export_benchmark, write_perception_test, write_ssv2
from tests.conftest import REPO_ROOT, one_error_line, tiny_mae_config
from tests.models.test_convert import (
    BACKBONE_ONLY,
    READOUT,
    backbone_shapes,
    full_arrays,
    official_output_map,
    random_arrays,
    write_npz,
)
from tests.train.conftest import write_tiny_params

TASKS = ("depth", "pose", "tracking", "boxes", "classification")


@pytest.fixture(scope="module")
def setup(tiny_corpus, tmp_path_factory):
    """(shards, pretrained dir) for a tiny untrained encoder on 4-frame 16x16 clips."""
    root = tmp_path_factory.mktemp("readout")
    curate(tiny_corpus, root, CurateConfig(4, 2, 12, 16, 8, 0.0, "center"))
    cfg = ModelConfig(32, 2, 2, 64, (2, 8, 8), qk_norm=True, parallel_blocks=False, bias=True)
    mae = tiny_mae_config(mask_ratio=0.5)
    model = MaskedAutoencoder(VideoViT(cfg, 4, 16), mae)
    (root / "pretrained").mkdir()
    save_mae(root / "pretrained" / "checkpoint.pt", model.state_dict(), cfg, mae, 4, 16)
    return root / "shards", root / "pretrained"


def run_readout(
    setup,
    tmp_path,
    task: str,
    regime: str = "frozen",
    settings: dict | None = None,
    model: ModelConfig | None = None,
    also: list[str] | None = None,
    more_settings: dict | None = None,
    **readout,
) -> dict:
    """Run the readout stage through the CLI in `regime`, of `task` (and of the tasks `also`,
    in the same stage); `settings` update readouts.<task> (`more_settings`, task -> settings,
    the others'), `model` replaces the scale's architecture (that of the checkpoint read),
    keywords update readout. Returns `task`'s metrics, the stage's folder ("out") and the
    task's files ("files")."""
    shards, pretrained = setup
    tmp_path.mkdir(parents=True, exist_ok=True)
    params = write_tiny_params(tmp_path / "params.yaml")
    raw = yaml.safe_load(params.read_text())
    if model is not None:
        raw["models"]["tiny"] = {**dataclasses.asdict(model), "tubelet": list(model.tubelet)}
    raw["readout"].update(readout)
    raw["readout"]["regimes"] = [regime]
    for each in raw["readouts"].values():
        each.update(steps=6, batch_size=2, width=16, heads=2)
    raw["readouts"][task].update(settings or {})
    for other, changes in (more_settings or {}).items():
        raw["readouts"][other].update(changes)
    params.write_text(yaml.safe_dump(raw))
    out = tmp_path / f"{task}-{regime}"
    command = ["readout", "--params", str(params), "--scale", "tiny"]
    command += [word for each in (task, *(also or [])) for word in ("--task", each)]
    command += ["--regime", regime]
    command += ["--curated", str(shards), "--pretrained", str(pretrained), "--out", str(out)]
    assert main(command) == 0
    files = layout.ReadoutFiles.inside(out, task)
    return json.loads(files.metrics.read_text()) | {"out": out, "files": files}


@pytest.mark.parametrize("task", TASKS)
def test_every_task_writes_metrics_and_examples(setup, tmp_path, task):
    metrics = run_readout(setup, tmp_path, task)
    assert metrics["task"] == task and metrics["regime"] == "frozen"
    assert isinstance(metrics[metrics["headline"]], float)
    assert list((metrics["out"] / "examples").glob("*.png"))
    assert (metrics["out"] / "run.yaml").is_file()


@pytest.mark.parametrize("task", TASKS)
def test_every_task_ships_its_no_learning_baseline_on_the_same_clips(setup, tmp_path, task):
    metrics = run_readout(setup, tmp_path, task)
    headline, baseline = metrics["headline"], metrics["baseline"]
    assert set(baseline) == set(metrics) & set(baseline)  # the readout's own metric keys
    assert headline in baseline
    with open(metrics["files"].clips) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == metrics["test_clips"]
    values = np.array([float(row[f"baseline_{headline}"]) for row in rows])
    weights = np.array([float(row["weight"]) for row in rows])
    scored = weights > 0
    mean = np.sum(values[scored] * weights[scored]) / weights[scored].sum()
    assert mean == pytest.approx(baseline[headline])


def test_cached_features_give_the_same_readout(setup, tmp_path):
    """Features cached once and features encoded for every batch (in other batch sizes, so
    apart in their last bits) train the same readout. Read out on depth: on this tiny study
    the pose readout's centring grows those bits, from one process to the next, to up to 2e-3
    of its end-point error in six steps (a comparison that failed about one run in twelve); the
    depth readout's numbers stayed within 1e-7 in ten runs."""
    cached = run_readout(setup, tmp_path / "a", "depth", cache_features=True)
    fresh = run_readout(setup, tmp_path / "b", "depth", cache_features=False)
    for key in ("abs_rel", "rmse", "final_train_loss"):
        assert cached[key] == pytest.approx(fresh[key], rel=1e-6), key


def test_fine_tuning_trains_the_encoder_too(setup, tmp_path):
    frozen = run_readout(setup, tmp_path / "a", "pose", cache_features=False)
    tuned = run_readout(setup, tmp_path / "b", "pose", "finetuned", finetune_lr_scale=1.0)
    assert tuned["regime"] == "finetuned"
    assert tuned["final_train_loss"] != frozen["final_train_loss"]


def test_a_bf16_encoder_caches_bf16_features_in_host_memory_and_reads_out_fp32(setup):
    shards, pretrained = setup
    encoder = frozen(load_encoder(pretrained / "checkpoint.pt"), "bf16", torch.device("cpu"))
    assert {p.dtype for p in encoder.parameters()} == {torch.bfloat16}
    videos = load_split(shards, "readout-train", ("video",))["video"]
    videos = np.concatenate([videos, videos[:, :, ::-1]])  # and mirrored: several batches
    cached = Features(encoder, videos, 1, torch.device("cpu"), cache=True, batch_size=1)
    fresh = Features(encoder, videos, 1, torch.device("cpu"), cache=False, batch_size=1)
    assert cached.cached.dtype == torch.bfloat16 and cached.cached.device.type == "cpu"
    index = torch.arange(len(videos)).flip(0)
    assert cached(index).dtype == torch.float32
    assert torch.equal(cached(index), fresh(index))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_features_past_the_budget_are_memory_mapped_with_the_same_values(
    setup, tmp_path, precision
):
    shards, pretrained = setup
    encoder = frozen(load_encoder(pretrained / "checkpoint.pt"), precision, torch.device("cpu"))
    videos = load_split(shards, "readout-train", ("video",))["video"]
    videos = np.concatenate([videos, videos[:, :, ::-1]])  # and mirrored: several batches
    held = Features(encoder, videos, 1, torch.device("cpu"), cache=True, batch_size=1)
    budget = HostBudget(tmp_path, held.cached[0].nbytes)  # more than one clip: on disk
    mapped = Features(encoder, videos, 1, torch.device("cpu"), True, 1, budget)
    assert isinstance(mapped.cached, MappedFeatures) and list(tmp_path.glob("features-*.bin"))
    assert mapped.cached.dtype == held.cached.dtype and len(mapped.cached) == len(videos)
    index = torch.tensor([1, 0, 0])
    assert torch.equal(mapped.cached[index], held.cached[index])
    assert torch.equal(mapped(index), held(index))


def benchmark_source(corpus: Path, folder: Path, format: str) -> dict:
    """readouts.<task>.source for the corpus's readout splits written in `format` under `folder`
    (for "ssv2": six classes of flat colour, four training videos and three test ones)."""
    if format == "ssv2":
        write_ssv2(folder, {"train": [0, 1, 2, 3], "validation": [2, 3, 1]})
        labels, videos = folder / "labels", folder / "20bn-something-something-v2"
        train, test = labels / "train.json", labels / "validation.json"
    else:
        train, test = (
            export_benchmark(corpus, split, format, folder)
            for split in ("readout-train", "readout-test")
        )
        videos = ""
    source = {"format": format, "train": str(train), "test": str(test), "frame_stride": 1}
    return source | {"videos": str(videos)}


@pytest.mark.parametrize(
    ("task", "format"),
    [
        ("depth", "scannet"),
        ("tracking", "tapvid"),
        ("boxes", "box_tracks"),
        ("classification", "ssv2"),
    ],
)
def test_a_benchmark_readout_on_disk_scores_exactly_as_in_memory(
    setup, tiny_corpus, tmp_path, monkeypatch, task, format
):
    source = benchmark_source(tiny_corpus, tmp_path / "benchmark", format)
    written = []
    new_file = spill.HostBudget.new_file
    monkeypatch.setattr(
        spill.HostBudget,
        "new_file",
        lambda self, stem: written.append(stem) or new_file(self, stem),
    )
    runs = {}
    for name, mib in (("memory", 4096), ("disk", 0)):
        written.clear()
        runs[name] = run_readout(
            setup, tmp_path / name, task, settings={"source": source}, max_host_mib=mib
        )
        runs[name]["spilled"] = sorted(written)
        assert not list((tmp_path / name).glob(".*scratch*"))  # removed at the end
    assert runs["memory"]["spilled"] == []
    assert {"video", "features"} <= set(runs["disk"]["spilled"])
    files = {name: run.pop("files") for name, run in runs.items()}
    for file in ("metrics", "clips"):
        disk, memory = getattr(files["disk"], file), getattr(files["memory"], file)
        assert disk.read_bytes() == memory.read_bytes(), file


def test_a_bf16_readout_trains_close_to_the_fp32_one(setup, tmp_path):
    full = run_readout(setup, tmp_path / "a", "pose", precision="fp32")
    half = run_readout(setup, tmp_path / "b", "pose", precision="bf16")
    assert half["final_train_loss"] == pytest.approx(full["final_train_loss"], rel=0.05)
    assert "frozen.precision = 'bf16'" in (half["out"] / "operative.gin").read_text()


def test_a_finetuned_encoder_stays_fp32_whatever_the_precision(setup, tmp_path):
    full = run_readout(setup, tmp_path / "a", "pose", "finetuned", precision="fp32")
    half = run_readout(setup, tmp_path / "b", "pose", "finetuned", precision="bf16")
    assert half["final_train_loss"] == full["final_train_loss"]


@pytest.mark.parametrize(
    ("task", "format"),
    [
        ("depth", "scannet"),
        ("pose", "scannet"),
        ("pose", "realestate10k"),
        ("tracking", "tapvid"),
        ("boxes", "box_tracks"),
    ],
)
def test_a_benchmark_format_feeds_the_readout_through_params(
    setup, tiny_corpus, tmp_path, task, format
):
    train, test = (
        export_benchmark(tiny_corpus, split, format, tmp_path / "benchmark")
        for split in ("readout-train", "readout-test")
    )
    source = {"format": format, "train": str(train), "test": str(test), "frame_stride": 1}
    source["videos"] = ""
    metrics = run_readout(setup, tmp_path, task, settings={"source": source})
    assert (metrics["source"], metrics["train_clips"], metrics["test_clips"]) == (format, 3, 3)
    assert np.isfinite(metrics[metrics["headline"]])
    record = yaml.safe_load((metrics["out"] / "run.yaml").read_text())
    assert any(Path(path).is_relative_to(test) for path in record["inputs"])


def test_a_perception_test_readout_also_carries_the_challenges_numbers(
    setup, tiny_corpus, tmp_path
):
    """Beside the per-clip headline, metrics.json holds the baseline notebook's numbers of the
    whole test videos (fourds.evaluate.perception_test), the readout's (averaged over seeds)
    and, under "baseline", those of static points: the notebook's own baseline, worked out here
    from the annotation file."""
    root = write_perception_test(tiny_corpus, tmp_path / "perception_test")
    source = {"format": "perception_test", "train": str(root / "all_train.json"),
              "test": str(root / "all_valid.json"), "frame_stride": 1,
              "videos": str(root / "videos")}  # fmt: skip
    metrics = run_readout(setup, tmp_path, "tracking", settings={"source": source, "seeds": 2})
    official = metrics[OFFICIAL]
    assert metrics["headline"] == "average_jaccard" and official["videos"] == 1
    assert 0 <= official["average_jaccard"] <= 1
    assert official["average_jaccard_static_camera"] == official["average_jaccard"]
    (video,) = read_point_tracks(root / "all_valid.json")
    tracks, visible = video.arrays(1)
    first = np.array([ids[0] for ids in video.frame_ids])
    static = np.repeat(tracks[np.arange(len(tracks)), first][:, None], video.num_frames, 1)
    expected = video_metrics(tracks, visible, static, first)
    assert metrics["baseline"][OFFICIAL] == pytest.approx(
        expected | {"videos": 1, "average_jaccard_static_camera": expected["average_jaccard"]}
    )


def test_a_converted_official_depth_readout_is_scored_without_training(setup, tmp_path):
    shards, _ = setup
    arrays = full_arrays()
    arrays[READOUT + "Dense_1/bias"] += 4.0  # depths around 4 m
    official = tmp_path / "official"
    official.mkdir()
    assert main(["convert", "--npz", str(write_npz(tmp_path / "depth.npz", arrays)),
                 "--out", str(official / "checkpoint.pt")]) == 0  # fmt: skip
    readout_file = official / "checkpoint-readout.pt"
    metrics = run_readout(
        (shards, official),
        tmp_path,
        "depth",
        settings={"pretrained": str(readout_file)},
        model=load_encoder(official / "checkpoint.pt").cfg,
        readout_depth=0.5,  # the official code's entry 1 of 4: the token embedding
    )
    assert metrics["readout"] == str(readout_file) and "final_train_loss" not in metrics
    assert metrics["readout_block"] == 0

    encoder = load_encoder(official / "checkpoint.pt")
    readout = load_readout(readout_file).module
    test = load_split(shards, "readout-test", ("video", "depth"))
    video = torch.from_numpy(test["video"]).float() / 255.0
    with torch.no_grad():
        outputs = readout(encoder(video, num_blocks=0))
    # the default protocol: predictions clamped to readouts.depth.options.range, metrics per frame,
    # averaged over frames
    images = depth_image_metrics(
        official_output_map(outputs.numpy(), (2, 8, 8), 1)[..., 0], test["depth"], (0.001, 80.0)
    )
    for key in ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3"):
        assert metrics[key] == pytest.approx(np.nanmean(images[key]), rel=1e-4), key


def test_the_readout_also_trains_on_clips_cut_from_the_pretraining_segments(setup, tmp_path):
    alone = run_readout(setup, tmp_path / "a", "boxes", settings={"pretrain_clips": 0})
    more = run_readout(setup, tmp_path / "b", "boxes", settings={"pretrain_clips": 1})
    assert (alone["pretrain_clips"], more["pretrain_clips"]) == (0, 1)
    assert more["train_clips"] == alone["train_clips"] + 1
    assert more["test_clips"] == alone["test_clips"]
    assert more["baseline"] == alone["baseline"]
    assert more["final_train_loss"] != alone["final_train_loss"]
    record = (more["out"] / "run.yaml").read_text()
    assert "pretrain-" in record and "pretrain-" not in (alone["out"] / "run.yaml").read_text()


def test_tasks_read_out_together_score_as_each_alone_on_features_encoded_once(
    setup, tmp_path, monkeypatch
):
    """One stage reading out boxes (2 clips cut from the pretraining segments) and depth (1 of
    the same) writes each task's files as a stage of that task alone does, and encodes each
    split once: depth's train features are the first of boxes'."""
    from fourds.evaluate import shared_features

    encoded = []
    real = shared_features.test_features
    monkeypatch.setattr(shared_features, "test_features",
                        lambda encoder, clips, *rest: encoded.append(len(clips["video"]))
                        or real(encoder, clips, *rest))  # fmt: skip
    settings = {"boxes": {"pretrain_clips": 2}, "depth": {"pretrain_clips": 1}}
    alone = {
        task: run_readout(setup, tmp_path / task, task, settings=settings[task])
        for task in settings
    }
    encoded.clear()
    together = run_readout(setup, tmp_path / "both", "depth", settings=settings["depth"],
                           also=["boxes"], more_settings=settings)  # fmt: skip
    assert len(encoded) == 2  # boxes' train clips and the test clips, once each
    for task in settings:
        files = layout.ReadoutFiles.inside(together["out"], task)
        assert files.metrics.read_bytes() == alone[task]["files"].metrics.read_bytes(), task
        assert files.clips.read_bytes() == alone[task]["files"].clips.read_bytes(), task
        assert (files.examples / f"{task}.png").is_file()
    record = yaml.safe_load((together["out"] / "execution.yaml").read_text())
    assert set(record["tasks"]) == {"boxes", "depth"}


@pytest.fixture(scope="module")
def converted(setup, tmp_path_factory):
    """(shards, folder of a converted official backbone): the released layout of a randomly
    initialised model, converted by `fourds convert`, on the shards' 4-frame 16x16 clips."""
    shards, _ = setup
    root = tmp_path_factory.mktemp("official")
    npz = write_npz(root / "scaling4d_dist_b.npz", random_arrays(backbone_shapes(BACKBONE_ONLY)))
    command = ["convert", "--npz", str(npz), "--out", str(root / "official" / "checkpoint.pt")]
    assert main(command) == 0
    return shards, root / "official"


@pytest.mark.parametrize("task", TASKS)
def test_every_task_trains_a_readout_on_a_converted_official_encoder(converted, tmp_path, task):
    official = load_encoder(converted[1] / "checkpoint.pt").cfg
    metrics = run_readout(converted, tmp_path, task, model=official)
    assert metrics["readout"] == "trained" and math.isfinite(metrics["final_train_loss"])
    assert math.isfinite(metrics[metrics["headline"]])
    encoder = load_encoder(converted[1] / "checkpoint.pt")
    assert encoder.convention == "official"
    assert metrics["params"] == count_parameters(encoder)
    # the official code's block for readout_depth 0.95 of 3: entry int(4 * 0.95) - 1 = 2
    assert metrics["readout_block"] == readout_block_count(3, 0.95, "official") == 1


def test_curated_clips_of_another_shape_than_the_encoders_are_refused(
    setup, tiny_corpus, tmp_path, capsys
):
    _, pretrained = setup  # an encoder of 4-frame 16x16 clips
    curate(tiny_corpus, tmp_path / "curated", CurateConfig(4, 2, 12, 32, 8, 0.0, "center"))
    params = write_tiny_params(tmp_path / "params.yaml")
    command = ["readout", "--params", str(params), "--scale", "tiny", "--task", "boxes"]
    command += ["--curated", str(tmp_path / "curated" / "shards"), "--pretrained", str(pretrained)]
    assert main([*command, "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "fourds readout: error: the train clips of readouts.boxes.source are 4x32x32 (frames x "
        "height x width), the encoder reads 4x16x16: curate at its shape (curate.clip_frames, "
        "curate.resolution) or name a benchmark in the source"
    )
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_of_another_scale_is_refused_naming_both(converted, tmp_path, capsys):
    _, official = converted  # the small official layout, not the params' tiny scale
    params = write_tiny_params(tmp_path / "params.yaml")
    command = ["readout", "--params", str(params), "--scale", "tiny", "--task", "boxes"]
    command += ["--curated", str(converted[0]), "--pretrained", str(official)]
    assert main([*command, "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert f"{official / 'checkpoint.pt'} holds an encoder of width" in error
    assert "scale 'tiny' in the params is width 32, depth 2" in error
    assert not (tmp_path / "out").exists()


def test_a_weights_file_without_a_digest_is_read_and_recorded_as_unverified(setup, tmp_path):
    shards, pretrained = setup
    payload = torch.load(pretrained / "checkpoint.pt", weights_only=True)
    del payload["digest"]  # as a file written elsewhere
    (tmp_path / "elsewhere").mkdir()
    torch.save(payload, tmp_path / "elsewhere" / "checkpoint.pt")
    verified = run_readout(setup, tmp_path / "verified", "boxes")
    unverified = run_readout((shards, tmp_path / "elsewhere"), tmp_path / "unverified", "boxes")
    assert unverified["miou"] == verified["miou"]
    assert "unverified_inputs" not in yaml.safe_load((verified["out"] / "run.yaml").read_text())
    record = yaml.safe_load((unverified["out"] / "run.yaml").read_text())
    assert record["unverified_inputs"] == [str(tmp_path / "elsewhere" / "checkpoint.pt")]


def test_a_readout_with_several_seeds_reports_their_mean_and_each_seed(setup, tmp_path):
    one = run_readout(setup, tmp_path / "one", "boxes")
    two = run_readout(setup, tmp_path / "two", "boxes", settings={"seeds": 2})
    assert two["seeds"] == 2 and len(two["final_train_losses"]) == 2
    first, second = two["seed_headlines"]
    assert first == one["miou"] and second != first  # seed 0 is the one-seed readout
    assert two["miou"] == pytest.approx((first + second) / 2)
    assert two["final_train_loss"] == pytest.approx(np.mean(two["final_train_losses"]))
    assert two["baseline"] == one["baseline"]
    with open(two["files"].clips) as handle:
        rows = list(csv.DictReader(handle))
    assert [row["seed"] for row in rows] == ["0"] * two["test_clips"] + ["1"] * two["test_clips"]
    scores = read_clip_scores(two["files"].clips, "miou")
    assert scores.seed_headlines().tolist() == pytest.approx([first, second])


@pytest.mark.parametrize("task", ["pose", "tracking"])
def test_seeds_trained_side_by_side_score_as_seeds_trained_one_after_another(
    setup, tmp_path, task, monkeypatch
):
    """A frozen encoder's three seeds trained at once, each in a process of its own at one
    thread, and in the stage seed after seed at one thread: the same numbers (the pose
    readout's running token mean and the tracking readout's two heads come back from the
    processes with the weights)."""
    forked = []

    def recording(jobs, names):
        forked.append(len(jobs))
        assert names == [f"readout seed {seed}" for seed in range(len(jobs))]
        return side_by_side(jobs, names)

    monkeypatch.setattr(readout_seeds, "side_by_side", recording)
    monkeypatch.setattr(readout_seeds, "seed_training", lambda spec, device: "side_by_side")
    apart = run_readout(setup, tmp_path / "apart", task, settings={"seeds": 3})
    monkeypatch.setattr(readout_seeds, "seed_training", lambda spec, device: "one_after_another")
    in_turn = run_readout(setup, tmp_path / "in_turn", task, settings={"seeds": 3})
    assert forked == [3]
    for key in ("seed_headlines", "final_train_losses", apart["headline"], "baseline"):
        assert apart[key] == in_turn[key], key


def test_a_frozen_encoders_seeds_train_batched_on_a_gpu_and_side_by_side_on_cpu_threads(
    monkeypatch,
):
    params = load_params(REPO_ROOT / "params.yaml")  # three seeds a readout
    frozen = params.readout_spec("cpu_s", "depth", "frozen")
    finetuned = dataclasses.replace(frozen, regime="finetuned")
    one_seed = dataclasses.replace(frozen, own=dataclasses.replace(frozen.own, seeds=1))
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert readout_seeds.seed_training(frozen, cpu) == "side_by_side"
    assert readout_seeds.seed_training(frozen, cuda) == "batched"
    for spec in (finetuned, one_seed):  # one encoder restarted per seed; nothing to batch
        for device in (cpu, cuda):
            assert readout_seeds.seed_training(spec, device) == "one_after_another"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert readout_seeds.seed_training(frozen, cpu) == "one_after_another"


def test_an_input_replaced_while_the_stage_reads_it_is_refused_and_nothing_recorded(
    setup, tmp_path, monkeypatch, capsys
):
    """The readout's test clips rewritten while its seeds train: what it computed may mix the
    old and the new file, so the stage stops in one line naming it and writes no result."""
    shards, pretrained = setup
    copied = tmp_path / "shards"
    shutil.copytree(shards, copied)
    from fourds.stages import readout as stage

    def train_then_replace(*args, **kwargs):
        trained = real_train_seeds(*args, **kwargs)
        test_shard = sorted(copied.glob("readout-test*.npz"))[0]
        test_shard.write_bytes(test_shard.read_bytes() + b"\0")  # another file, same name
        return trained

    real_train_seeds = stage.train_seeds
    monkeypatch.setattr(stage, "train_seeds", train_then_replace)
    capsys.readouterr()
    with pytest.raises(AssertionError):  # run_readout checks the stage succeeded
        run_readout((copied, pretrained), tmp_path / "run", "boxes")
    error = one_error_line(capsys.readouterr().err, "readout")
    assert "readout-test" in error and "changed while the stage read it" in error
    assert not (tmp_path / "run" / "boxes-frozen" / "metrics").exists()
