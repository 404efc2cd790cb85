"""The `readout` stage: an attention readout trained on one task on one scale's encoder, in one
regime, and scored on the readout-test clips.

Outputs in `out_dir`: metrics.json (the task's metrics, its headline, the encoder's parameter
count, on Perception Test the challenge's own numbers under "perception_test_official"
(fourds.evaluate.perception_test), and under "baseline" the same metrics of the task's
no-learning predictor on the same test clips, `Task.baseline`), clips.csv (per test clip: the
headline and the other per-clip metrics, the weight of the clip in the headline, and the
baseline's headline as `baseline_<headline>`; see fourds.evaluate.tasks.base.Evaluation),
examples/<task>.png, run.yaml, execution.yaml and operative.gin (fourds.records). See
fourds.evaluate.readout for the regimes, the data sources and the precision a frozen encoder
runs in.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from fourds import layout
from fourds.atomic import (
    check_output_directory,
    claim_output_directory,
    scratch_directory,
    write_json,
)
from fourds.config import ReadoutSpec, RuntimeConfig
from fourds.config.operative import stage
from fourds.config.regimes import REGIMES
from fourds.data.benchmarks import source_files
from fourds.data.shards import shard_paths
from fourds.data.spill import HostBudget
from fourds.evaluate.readout import converted_readout, score
from fourds.evaluate.readout_clips import ReadoutClips, readout_task
from fourds.evaluate.readout_encoder import regime_encoder
from fourds.evaluate.readout_files import draw_examples, write_clip_values
from fourds.evaluate.readout_seeds import mean_metrics, train_seeds
from fourds.evaluate.tasks.depth import depth_protocol
from fourds.models.vit import count_parameters
from fourds.models.weights import is_verified
from fourds.records import PartTimer, check_inputs_unchanged, input_digests, write_run_record
from fourds.runtime import setup_runtime


@stage
def run(
    spec: ReadoutSpec,
    runtime: RuntimeConfig,
    shard_dir: str | Path,
    pretrain_dir: str | Path,
    out_dir: str | Path,
    params_path: str | Path,
) -> dict:
    """Train and score the readout `spec` (`Params.readout_spec`: its task on its scale's
    encoder in its regime) on `runtime`, or score the converted readout
    `readouts.<task>.pretrained` without training. Arrays past readout.max_host_mib live in a
    scratch folder beside `out_dir` while it runs."""
    task_cfg = spec.own
    checkpoint = Path(pretrain_dir)
    if not checkpoint.is_file():  # the pretrain stage's folder
        checkpoint = checkpoint / "checkpoint.pt"
    source = task_cfg.source
    read = (shard_dir, checkpoint, source.train, source.test, source.videos, task_cfg.pretrained)
    read = tuple(path for path in read if path)
    check_output_directory(out_dir, read)
    with scratch_directory(out_dir) as scratch:
        budget = HostBudget(scratch, spec.shared.max_host_mib << 20)
        return _run(spec, runtime, shard_dir, checkpoint, read, out_dir, params_path, budget)


def _run(
    spec: ReadoutSpec,
    runtime: RuntimeConfig,
    shard_dir: str | Path,
    checkpoint: Path,
    read: tuple[str | Path, ...],
    out_dir: str | Path,
    params_path: str | Path,
    budget: HostBudget,
) -> dict:
    """`run` once its arguments are checked, for the readout `spec`: the encoder at
    `checkpoint`, the inputs `read`, and the host memory `budget` for benchmark clips and
    cached features."""
    runtime, device = setup_runtime(runtime)
    spec = spec.with_attention(runtime.attention)  # the attention that runs here
    cfg, task_cfg = spec.shared, spec.own
    pretrained = REGIMES[spec.regime].pretrained

    def read_once() -> list[Path]:  # hashed before they are read, checked before recording
        files = [checkpoint] if pretrained else []
        files += source_files(task_cfg.source, shard_dir)
        return files + ([Path(task_cfg.pretrained)] if task_cfg.pretrained else [])

    try:
        digests = input_digests(read_once())
    except FileNotFoundError:  # the format's reader says below what is missing, and where from
        digests = None
    encoder = regime_encoder(spec, checkpoint, device)
    torch.manual_seed(cfg.seed)  # the same readout initialisation in every regime
    started = time.perf_counter()
    clips = ReadoutClips.load(spec, encoder, shard_dir, budget)
    digests = digests or input_digests(read_once())
    if task_cfg.pretrained:
        readout, task = converted_readout(
            task_cfg.pretrained, clips.geometry, depth_protocol(task_cfg.options), spec.attention
        )
    else:
        readout, task = None, readout_task(spec.task, task_cfg, clips)
    train_targets, targets = task.targets(clips.train), task.targets(clips.test)
    if readout is not None:  # a converted readout, scored as it is
        timer = PartTimer()
        with timer.part("encode"):
            features = clips.test_features(encoder, device, task_cfg.batch_size, budget)
        with timer.part("score"):
            evaluation = score(readout.to(device), task, features, targets, task_cfg.batch_size)
        evaluations, trained = [evaluation], {}
    else:
        evaluations, trained, timer = train_seeds(
            spec, encoder, clips, task, (train_targets, targets), device, budget
        )
    baseline = task.evaluate(task.baseline(train_targets), targets, task_cfg.batch_size)
    check_inputs_unchanged(digests)
    claim_output_directory(out_dir, read)
    out_dir = Path(out_dir)
    draw_examples(task, clips.test, targets, evaluations[0], out_dir)
    metrics = {
        "scale": spec.scale,
        "task": spec.task,
        "regime": spec.regime,
        "source": task_cfg.source.format,
        "readout": task_cfg.pretrained or "trained",
        "headline": task.headline,
        "params": count_parameters(encoder),
        "readout_block": clips.num_blocks,
        "test_clips": len(clips.test["video"]),
        **trained,
        **mean_metrics([evaluation.metrics for evaluation in evaluations]),
        "baseline": baseline.metrics,
    }
    write_json(out_dir / "metrics.json", metrics)
    per_seed = [evaluation.clips for evaluation in evaluations]
    write_clip_values(out_dir / "clips.csv", per_seed, baseline.clips, task.headline)
    extra = clips.extra and not task_cfg.pretrained  # pretraining segments with ground truth
    inputs = [Path(path) for path in digests] + (
        shard_paths(shard_dir, "pretrain") if extra else []
    )
    write_run_record(
        out_dir,
        layout.readout(spec.scale, spec.task, spec.regime).name,
        params_path,
        inputs,
        str(device),
        known_digests=digests,
        execution={"seconds": round(time.perf_counter() - started, 2), **timer.seconds()},
        unverified=[checkpoint] if pretrained and not is_verified(checkpoint) else [],
        attention=runtime.attention,
    )
    return metrics
