"""The `readout` stage: attention readouts trained on one scale's encoder in one regime, a task
at a time, each scored on the readout-test clips.

Outputs in `out_dir`, per task (fourds.layout.ReadoutFiles): metrics/<task>.json (the task's
metrics, its headline, the encoder's parameter count, on Perception Test the challenge's own
numbers under "perception_test_official" (fourds.evaluate.perception_test), and under
"baseline" the same metrics of the task's no-learning predictor on the same test clips,
`Task.baseline`), clips/<task>.csv (per test clip: the headline and the other per-clip metrics,
the weight of the clip in the headline, and the baseline's headline as `baseline_<headline>`;
see fourds.evaluate.tasks.base.Evaluation) and examples/<task>.png; for the stage, run.yaml,
execution.yaml (seconds by task and part) and operative.gin (fourds.records). A frozen
encoder's features are computed once for every task that reads the same clips
(fourds.evaluate.shared_features); a fine-tuned encoder starts each task from its checkpoint.
See fourds.evaluate.readout for the regimes, the data sources and the precision a frozen
encoder runs in.
"""

from __future__ import annotations

import dataclasses
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
from fourds.evaluate.shared_features import FeatureStore
from fourds.evaluate.tasks import Task
from fourds.evaluate.tasks.base import Evaluation
from fourds.evaluate.tasks.depth import depth_protocol
from fourds.models.vit import VideoViT, count_parameters
from fourds.models.weights import is_verified
from fourds.records import PartTimer, check_inputs_unchanged, input_digests, write_run_record
from fourds.runtime import setup_runtime


@stage
def run(
    specs: list[ReadoutSpec],
    runtime: RuntimeConfig,
    shard_dir: str | Path,
    pretrain_dir: str | Path,
    out_dir: str | Path,
    params_path: str | Path,
) -> dict[str, dict]:
    """Train and score the readouts `specs` (`Params.readout_specs`: tasks of one scale's
    encoder in one regime) on `runtime`, or score a converted readout
    (`readouts.<task>.pretrained`) without training; each task's metrics by task. Arrays past
    readout.max_host_mib live in a scratch folder beside `out_dir` while it runs."""
    checkpoint = Path(pretrain_dir)
    if not checkpoint.is_file():  # the pretrain stage's folder
        checkpoint = checkpoint / "checkpoint.pt"
    read = [shard_dir, checkpoint]
    for spec in specs:
        source = spec.own.source
        read += [source.train, source.test, source.videos, spec.own.pretrained]
    read = tuple(dict.fromkeys(path for path in read if path))
    check_output_directory(out_dir, read)
    with scratch_directory(out_dir) as scratch:
        budget = HostBudget(scratch, specs[0].shared.max_host_mib << 20)
        return _run(specs, runtime, shard_dir, checkpoint, read, out_dir, params_path, budget)


def _run(
    specs: list[ReadoutSpec],
    runtime: RuntimeConfig,
    shard_dir: str | Path,
    checkpoint: Path,
    read: tuple[str | Path, ...],
    out_dir: str | Path,
    params_path: str | Path,
    budget: HostBudget,
) -> dict[str, dict]:
    """`run` once its arguments are checked, for the readouts `specs`: the encoder at
    `checkpoint`, the inputs `read`, and the host memory `budget` for benchmark clips and
    cached features."""
    runtime, device = setup_runtime(runtime)
    specs = [spec.with_attention(runtime.attention) for spec in specs]  # what runs here
    first, regime = specs[0], REGIMES[specs[0].regime]

    def read_once() -> list[Path]:  # hashed before they are read, checked before recording
        files = [checkpoint] if regime.pretrained else []
        for spec in specs:
            files += source_files(spec.own.source, shard_dir)
            files += [Path(spec.own.pretrained)] if spec.own.pretrained else []
        return list(dict.fromkeys(files))

    try:
        digests = input_digests(read_once())
    except FileNotFoundError:  # the format's reader says below what is missing, and where from
        digests = None
    started = time.perf_counter()
    encoder = None if regime.trains_encoder else regime_encoder(first, checkpoint, device)
    store = FeatureStore(device, budget)
    results, seconds = {}, {}
    # the tasks of a source together, the one reading the most clips first: the others read
    # the first of its features
    for spec in sorted(specs, key=lambda spec: (repr(spec.own.source), -spec.own.pretrain_clips)):
        store.use(spec.own.source)
        task_encoder = encoder or regime_encoder(spec, checkpoint, device)  # fine-tuned afresh
        task_started = time.perf_counter()
        results[spec.task] = _read_out(spec, task_encoder, shard_dir, store, budget, device)
        seconds[spec.task] = {
            "seconds": round(time.perf_counter() - task_started, 2),
            **results[spec.task].timer.seconds(),
        }
    digests = digests or input_digests(read_once())
    check_inputs_unchanged(digests)
    claim_output_directory(out_dir, read)
    metrics = {
        spec.task: results[spec.task].write(spec, layout.ReadoutFiles.inside(out_dir, spec.task))
        for spec in specs
    }
    inputs = [Path(path) for path in digests]
    if any(results[spec.task].clips.extra and not spec.own.pretrained for spec in specs):
        inputs += shard_paths(shard_dir, "pretrain")  # pretraining segments with ground truth
    write_run_record(
        out_dir,
        layout.readout(first.scale, first.regime).name,
        params_path,
        inputs,
        str(device),
        known_digests=digests,
        execution={"seconds": round(time.perf_counter() - started, 2), "tasks": seconds},
        unverified=[checkpoint] if regime.pretrained and not is_verified(checkpoint) else [],
        attention=runtime.attention,
    )
    return metrics


@dataclasses.dataclass(frozen=True)
class TaskReadout:
    """One task's readout as the stage made it: its task and clips, the test targets, each
    seed's evaluation and the baseline's, metrics.json's fields of the training and the encoder,
    and the seconds of its parts."""

    task: Task
    clips: ReadoutClips
    targets: dict
    evaluations: list[Evaluation]
    baseline: Evaluation
    summary: dict
    timer: PartTimer

    def write(self, spec: ReadoutSpec, files: layout.ReadoutFiles) -> dict:
        """Write the readout of `spec` into `files` (its metrics, its values per clip and its
        example figure); returns its metrics."""
        evaluations = self.evaluations
        draw_examples(self.task, self.clips.test, self.targets, evaluations[0], files.examples)
        metrics = {
            "scale": spec.scale,
            "task": spec.task,
            "regime": spec.regime,
            "source": spec.own.source.format,
            "readout": spec.own.pretrained or "trained",
            "headline": self.task.headline,
            **self.summary,
            **mean_metrics([evaluation.metrics for evaluation in evaluations]),
            "baseline": self.baseline.metrics,
        }
        write_json(files.metrics, metrics)
        per_seed = [evaluation.clips for evaluation in evaluations]
        write_clip_values(files.clips, per_seed, self.baseline.clips, self.task.headline)
        return metrics


def _read_out(
    spec: ReadoutSpec,
    encoder: VideoViT,
    shard_dir: str | Path,
    store: FeatureStore,
    budget: HostBudget,
    device: torch.device,
) -> TaskReadout:
    """The readout `spec` trained (each seed) and scored, or its converted readout scored."""
    task_cfg = spec.own
    torch.manual_seed(spec.shared.seed)  # the same readout initialisation in every regime
    clips = ReadoutClips.load(spec, encoder, shard_dir, budget)
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
            features = store.features(encoder, clips.test["video"], clips.num_blocks,
                                      task_cfg.batch_size)  # fmt: skip
        with timer.part("score"):
            evaluation = score(readout.to(device), task, features, targets, task_cfg.batch_size)
        evaluations, trained = [evaluation], {}
    else:
        evaluations, trained, timer = train_seeds(
            spec, encoder, clips, task, (train_targets, targets), device, budget, store
        )
    baseline = task.evaluate(task.baseline(train_targets), targets, task_cfg.batch_size)
    summary = {
        "params": count_parameters(encoder),
        "readout_block": clips.num_blocks,
        "test_clips": len(clips.test["video"]),
        **trained,
    }
    return TaskReadout(task, clips, targets, evaluations, baseline, summary, timer)
