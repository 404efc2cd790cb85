"""The `readout` stage: an attention readout trained on one task on one scale's encoder, in one
regime, and scored on the readout-test clips.

Outputs in `out_dir`: metrics.json (the task's metrics, its headline, the encoder's parameter
count, and under "baseline" the same metrics of the task's no-learning predictor on the same
test clips, `Task.baseline`), clips.csv (per test clip: the headline and the other per-clip
metrics, the weight of the clip in the headline, and the baseline's headline as
`baseline_<headline>`; see fourds.evaluate.tasks.base.Evaluation), examples/<task>.png,
run.yaml, execution.yaml and operative.gin (fourds.records). See fourds.evaluate.readout for
the regimes, the data sources and the precision a frozen encoder runs in.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from fourds.atomic import (
    atomic_path,
    check_output_directory,
    claim_output_directory,
    scratch_directory,
    write_json,
)
from fourds.config import (
    ConfigError,
    ModelConfig,
    Params,
    ReadoutConfig,
    SourceConfig,
    readout_name,
)
from fourds.config.operative import configured, stage
from fourds.config.regimes import REGIMES
from fourds.data.benchmarks import (
    load_readout_split,
    pretrain_clips,
    readout_classes,
    source_files,
)
from fourds.data.shards import shard_paths
from fourds.data.spill import HostBudget
from fourds.evaluate.precision import frozen
from fourds.evaluate.readout import (
    Features,
    build_readout,
    clip_geometry,
    converted_readout,
    score,
    test_features,
    train_readout,
)
from fourds.evaluate.tasks import ClipGeometry, Task, TaskContext, depth_protocol, make_task
from fourds.evaluate.tasks.base import Evaluation, select
from fourds.models.factory import initial_encoder
from fourds.models.readout import readout_block_count
from fourds.models.vit import VideoViT, count_parameters
from fourds.models.weights import is_verified, load_encoder
from fourds.records import PartTimer, write_run_record
from fourds.runtime import setup_runtime
from fourds.tasks import TASKS

EXAMPLE_CLIPS = 3


def write_clip_values(
    path: Path, seeds: list[dict[str, np.ndarray]], baseline: dict[str, np.ndarray], headline: str
) -> None:
    """clips.csv: a row per test clip (per seed and test clip, after a "seed" column, when the
    readout trained with several seeds): clip, weight, the headline, the baseline's headline,
    then the other values (each [N])."""
    names = ["weight", headline, f"baseline_{headline}"]
    names += sorted(set(seeds[0]) - set(names))
    with atomic_path(path) as partial, open(partial, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(["seed"] if len(seeds) > 1 else []), "clip", *names])
        for seed, clips in enumerate(seeds):
            clips = {**clips, f"baseline_{headline}": baseline[headline]}
            for clip in range(len(clips["weight"])):
                row = [clip, *(repr(float(clips[name][clip])) for name in names)]
                writer.writerow([seed, *row] if len(seeds) > 1 else row)


def seed_summary(
    final_losses: list[float], evaluations: list[Evaluation], headline: str
) -> dict[str, object]:
    """metrics.json's training fields: the final training loss (the mean over the last tenth of
    the steps; over seeds, their mean), and with several seeds each seed's loss and headline."""
    summary: dict[str, object] = {"final_train_loss": float(np.mean(final_losses))}
    if len(final_losses) > 1:
        summary["seeds"] = len(final_losses)
        summary["final_train_losses"] = final_losses
        summary["seed_headlines"] = [evaluation.metrics[headline] for evaluation in evaluations]
    return summary


def mean_metrics(seeds: list[dict[str, float]]) -> dict[str, float]:
    """Each metric's mean over the seeds' evaluations (the one seed's metrics as they are)."""
    if len(seeds) == 1:
        return seeds[0]
    return {key: float(np.mean([metrics[key] for metrics in seeds])) for key in seeds[0]}


def check_clip_shape(video: np.ndarray, geometry: ClipGeometry, source: str, split: str) -> None:
    """The clips [N, T, H, W, 3] of a split are the encoder's own shape.

    Raises:
        ConfigError: they are not (curated shards of another ladder than the encoder's).
    """
    shape, expected = tuple(video.shape[1:4]), (geometry.frames, geometry.size, geometry.size)
    if shape != expected:
        raise ConfigError(
            f"the {split} clips of {source} are {'x'.join(map(str, shape))} (frames x height x "
            f"width), the encoder reads {'x'.join(map(str, expected))}: curate at its shape "
            "(curate.clip_frames, curate.resolution) or name a benchmark in the source"
        )


ARCHITECTURE = ("width", "depth", "heads", "mlp_dim", "tubelet")  # what shapes the weights


def check_encoder_scale(
    loaded: ModelConfig, expected: ModelConfig, checkpoint: Path, scale: str
) -> None:
    """The encoder read from `checkpoint` has the architecture params give scale `scale`.

    Raises:
        ConfigError: it has another (a checkpoint of another scale or ladder).
    """

    def shape(cfg: ModelConfig) -> str:
        return ", ".join(f"{name} {getattr(cfg, name)}" for name in ARCHITECTURE)

    if shape(loaded) != shape(expected):
        raise ConfigError(
            f"{checkpoint} holds an encoder of {shape(loaded)}; scale {scale!r} in the params "
            f"is {shape(expected)}: pass the checkpoint of {scale} (runs/pretrain/{scale}) or "
            "the scale the checkpoint was trained as"
        )


@stage
def run(
    params: Params,
    scale: str,
    task_name: str,
    regime: str,
    shard_dir: str | Path,
    pretrain_dir: str | Path,
    out_dir: str | Path,
    params_path: str | Path,
) -> dict:
    """Train and score the `task_name` readout on the encoder of `scale` in `regime` (or score
    the converted readout `readouts.<task>.pretrained` without training). Arrays past
    readout.max_host_mib live in a scratch folder beside `out_dir` while it runs."""
    if task_name not in params.readout.tasks:
        raise ConfigError(
            f"task {task_name!r} is not in readout.tasks={list(params.readout.tasks)}"
        )
    if regime not in params.readout.regimes:
        raise ConfigError(
            f"regime {regime!r} is not in readout.regimes={list(params.readout.regimes)}"
        )
    task_cfg = params.readouts[task_name]
    checkpoint = Path(pretrain_dir)
    if not checkpoint.is_file():  # the pretrain stage's folder
        checkpoint = checkpoint / "checkpoint.pt"
    source = task_cfg.source
    read = (shard_dir, checkpoint, source.train, source.test, source.videos, task_cfg.pretrained)
    read = tuple(path for path in read if path)
    check_output_directory(out_dir, read)
    with scratch_directory(out_dir) as scratch:
        budget = HostBudget(scratch, params.readout.max_host_mib << 20)
        return _run(params, scale, task_name, regime, shard_dir, checkpoint, read, out_dir,
                    params_path, budget)  # fmt: skip


def _run(
    params: Params,
    scale: str,
    task_name: str,
    regime: str,
    shard_dir: str | Path,
    checkpoint: Path,
    read: tuple[str | Path, ...],
    out_dir: str | Path,
    params_path: str | Path,
    budget: HostBudget,
) -> dict:
    """`run` once its arguments are checked: the encoder at `checkpoint`, the inputs `read`,
    and the host memory `budget` for benchmark clips and cached features."""
    cfg, task_cfg = params.readout, params.readouts[task_name]
    runtime, device = setup_runtime(params.runtime)
    params = dataclasses.replace(params, runtime=runtime)  # the attention that runs here
    encoder = regime_encoder(params, scale, regime, checkpoint, device)
    torch.manual_seed(cfg.seed)  # the same readout initialisation in every regime
    started = time.perf_counter()
    clips = ReadoutClips.load(params, task_name, encoder, shard_dir, budget)
    if task_cfg.pretrained:
        readout, task = converted_readout(
            task_cfg.pretrained, clips.geometry, depth_protocol(cfg), params.runtime.attention
        )
    else:
        readout, task = None, readout_task(cfg, task_name, clips, task_cfg.source)
    train_targets, targets = task.targets(clips.train), task.targets(clips.test)
    if readout is not None:  # a converted readout, scored as it is
        timer = PartTimer()
        with timer.part("encode"):
            features = clips.test_features(encoder, device, task_cfg.batch_size, budget)
        with timer.part("score"):
            evaluation = score(readout.to(device), task, features, targets, task_cfg.batch_size)
        evaluations, trained = [evaluation], {}
    else:
        label = readout_name(scale, task_name, regime)
        evaluations, trained, timer = train_seeds(
            params, task_name, regime, encoder, clips, task, (train_targets, targets), device,
            budget, label,
        )  # fmt: skip
    baseline = task.evaluate(task.baseline(train_targets), targets, task_cfg.batch_size)
    claim_output_directory(out_dir, read)
    out_dir = Path(out_dir)
    draw_examples(task, clips.test, targets, evaluations[0], out_dir)
    metrics = {
        "scale": scale,
        "task": task_name,
        "regime": regime,
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
    pretrained = REGIMES[regime].pretrained
    inputs = [checkpoint] if pretrained else []
    inputs += source_files(task_cfg.source, shard_dir)
    if task_cfg.pretrained:
        inputs.append(Path(task_cfg.pretrained))
    elif clips.extra:
        inputs += shard_paths(shard_dir, "pretrain")
    write_run_record(
        out_dir,
        f"readout@{readout_name(scale, task_name, regime)}",
        params_path,
        inputs,
        str(device),
        execution={"seconds": round(time.perf_counter() - started, 2), **timer.seconds()},
        unverified=[checkpoint] if pretrained and not is_verified(checkpoint) else [],
        attention=params.runtime.attention,
    )
    return metrics


def regime_encoder(
    params: Params, scale: str, regime: str, checkpoint: Path, device: torch.device
) -> VideoViT:
    """The encoder of `scale` as `regime` reads it: at random init (the control) or loaded
    from `checkpoint` (checked to be `scale`'s); fp32 and trainable to be fine-tuned, else
    frozen in readout.precision."""
    if not REGIMES[regime].pretrained:
        encoder = initial_encoder(params.pretraining(scale))
    else:
        encoder = load_encoder(checkpoint, params.runtime.attention)
        check_encoder_scale(encoder.cfg, params.model(scale), checkpoint, scale)
    if REGIMES[regime].trains_encoder:  # fp32, whatever readout.precision says
        return encoder.to(device).requires_grad_(True).train()
    # one GPU holds it unsharded (bf16: 4DS-j in about 41 GiB; `fourds plan` checks)
    return configured(frozen, {"precision": params.readout.precision}, encoder, device=device)


@dataclasses.dataclass(frozen=True)
class ReadoutClips:
    """A task's readout clips at the encoder's input: train and test {key: [N, ...]} ("video"
    [N, T, H, W, 3] uint8 and the task's keys), the train split extended by `extra` clips cut
    from the pretraining segments (readouts.<task>.pretrain_clips), and the block the
    readout reads (`num_blocks` of the encoder)."""

    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    extra: int
    geometry: ClipGeometry
    num_blocks: int

    @classmethod
    def load(
        cls,
        params: Params,
        task_name: str,
        encoder: VideoViT,
        shard_dir: str | Path,
        budget: HostBudget,
    ) -> ReadoutClips:
        """Read the splits of readouts.<task>.source, checked to have the encoder's shape.

        Raises:
            ConfigError: a split's clips are not the encoder's shape (`check_clip_shape`).
        """
        task_cfg = params.readouts[task_name]
        source, geometry = task_cfg.source, clip_geometry(encoder)
        num_blocks = readout_block_count(
            encoder.cfg.depth, params.readout.readout_depth, encoder.convention
        )
        keys = ("video", *TASKS[task_name].keys)
        splits = {
            name: load_readout_split(
                source, name, shard_dir, keys, geometry.frames, geometry.size, budget
            )
            for name in ("train", "test")
        }
        for name, clips in splits.items():
            check_clip_shape(clips["video"], geometry, f"readouts.{task_name}.source", name)
        train, extra = splits["train"], 0
        if task_cfg.pretrain_clips and source.format == "synthetic" and not task_cfg.pretrained:
            more = pretrain_clips(
                shard_dir, keys, task_cfg.pretrain_clips, geometry.frames,
                params.curate.frame_stride,
            )  # fmt: skip
            check_clip_shape(more["video"], geometry, shard_dir, "pretrain")
            train = {key: np.concatenate([train[key], more[key]]) for key in keys}
            extra = len(more["video"])
        return cls(train, splits["test"], extra, geometry, num_blocks)

    def test_features(
        self, encoder: VideoViT, device: torch.device, batch_size: int, budget: HostBudget
    ) -> Features:
        """The test clips' features as the encoder is now."""
        return test_features(encoder, self.test, self.num_blocks, device, batch_size, budget)


def readout_task(
    cfg: ReadoutConfig, task_name: str, clips: ReadoutClips, source: SourceConfig
) -> Task:
    """The task `task_name` a readout is trained on, for the clips and classes of `source`."""
    context = TaskContext.from_config(cfg, (clips.train, clips.test), readout_classes(source))
    return make_task(task_name, clips.geometry, context)


def train_seeds(
    params: Params,
    task_name: str,
    regime: str,
    encoder: VideoViT,
    clips: ReadoutClips,
    task: Task,
    targets: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]],
    device: torch.device,
    budget: HostBudget,
    label: str,
) -> tuple[list[Evaluation], dict[str, object], PartTimer]:
    """Train readouts.<task>.seeds readouts of `task` (readout.seed onwards) on the train clips
    and score each on the test clips, with `targets` (train, test) the task's targets of each:
    each seed's evaluation, metrics.json's training fields and the seconds spent encoding,
    training and scoring. A frozen encoder's features are computed once for every seed; a
    fine-tuned one starts each seed from the same weights and is scored as that seed left
    it."""
    cfg, task_cfg = params.readout, params.readouts[task_name]
    train_targets, test_targets = targets
    start = train_targets if cfg.start_at_baseline else None
    cache = cfg.cache_features and not REGIMES[regime].trains_encoder
    timer = PartTimer()
    with timer.part("encode"):
        train_features = Features(
            encoder, clips.train["video"], clips.num_blocks, device, cache, task_cfg.batch_size,
            budget,
        )  # fmt: skip
    initial = copy.deepcopy(encoder.state_dict()) if REGIMES[regime].trains_encoder else None
    features = None
    if initial is None:  # the encoder stays as it is: every seed reads the same features
        with timer.part("encode"):
            features = clips.test_features(encoder, device, task_cfg.batch_size, budget)
    evaluations, final_losses = [], []
    for seed in range(cfg.seed, cfg.seed + task_cfg.seeds):
        if initial is not None:  # every seed fine-tunes the same encoder
            encoder.load_state_dict(initial)
        torch.manual_seed(seed)
        readout = build_readout(
            encoder, task, task_cfg, params.runtime.attention, start, cfg.pose_readout,
            cfg.tracking_readout,
        ).to(device)  # fmt: skip
        with timer.part("train"):  # with the features of uncached clips
            losses = train_readout(
                readout, encoder, task, train_features, train_targets, task_cfg, cfg, regime,
                device, f"{label} seed {seed}", seed,
            )  # fmt: skip
        final_losses.append(float(np.mean(losses[-max(1, len(losses) // 10) :])))
        if initial is not None:  # this seed's fine-tuned encoder
            with timer.part("encode"):
                features = clips.test_features(encoder, device, task_cfg.batch_size, budget)
        with timer.part("score"):
            evaluation = score(readout, task, features, test_targets, task_cfg.batch_size)
        evaluations.append(evaluation)
    trained = {
        "train_clips": len(clips.train["video"]),
        "pretrain_clips": clips.extra,
        **seed_summary(final_losses, evaluations, task.headline),
    }
    return evaluations, trained, timer


def draw_examples(
    task: Task, test: dict[str, np.ndarray], targets: dict, evaluation: Evaluation, out_dir: Path
) -> None:
    """examples/<task>.png: the first EXAMPLE_CLIPS test clips, targets against the
    predictions of `evaluation` (the first seed's)."""
    shown = torch.arange(min(EXAMPLE_CLIPS, len(test["video"])))
    predictions = {key: value[: len(shown)] for key, value in evaluation.predictions.items()}
    task.draw(
        test["video"][shown.numpy()], select(targets, shown), predictions, out_dir / "examples"
    )
