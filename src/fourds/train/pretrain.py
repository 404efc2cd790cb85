"""MAE pretraining of one ladder scale on the curated pretrain segments, or on clips rendered
from the world (pretrain.source): the training loop.

`pretrain(...)` trains and returns the final weights, the training loss curve (10-step window
means at the default pretrain.log_every) and the held-out curve (the loss on fixed held-out clips
and masks at fixed steps, fourds.train.heldout); the pretrain stage (fourds.stages.pretrain)
writes them out. While training it writes, under `out_dir`:

    live/           DVCLive metrics and plots (see fourds.train.monitor; no DVC output)
    resume/<fingerprint>/step-N/
                    resumable checkpoints (see fourds.train.checkpoint), every
                    `pretrain.checkpoint_every` steps. The fingerprint hashes everything that
                    shapes the training trajectory (model, MAE and curate params, the
                    pretrain params but EXECUTION_ONLY ones, clip sampling included, the
                    shard contents, and the code: `code_digest`), so a rerun resumes only its
                    own run's state; a run of other params or other code starts afresh.

A run that finds a checkpoint of its own fingerprint resumes from it and ends with exactly the
weights of an uninterrupted run (bitwise on CPU): the model, optimizer, LR schedule, loader
and RNG states are restored, and every batch is a function of (seed, step) only.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from fourds.accelerators import job_peak_flops
from fourds.atomic import claim_output_directory
from fourds.config import ConfigError, PretrainConfig, PretrainSpec
from fourds.config.operative import configured
from fourds.data.augment import ClipSampler
from fourds.data.segments import SegmentStore
from fourds.data.shards import ShardError
from fourds.models.factory import scale_mae
from fourds.models.flops import training_flops_per_clip
from fourds.models.vit import count_parameters
from fourds.train.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from fourds.train.distributed import DistEnv, full_state_dict, mean_over_ranks
from fourds.train.heldout import HeldoutClips, heldout_clips, heldout_loss
from fourds.train.loader import ClipExample, pretrain_loader
from fourds.train.monitor import Monitor, RunShape
from fourds.train.optim import adamw, enable_tf32
from fourds.train.parallelize import ParallelPlan, parallelize
from fourds.train.step import StepRecipe, step_on_batch, view_crop
from fourds.train.world_clips import WorldClips, world_clip_spec

# Pretrain and curate params that change how a run is executed but not the weights it produces.
EXECUTION_ONLY = (
    "log_every",
    "checkpoint_every",
    "keep_checkpoints",
    "loader_workers",
    "prefetch",
    "shards_url",
)
CURATE_EXECUTION_ONLY = ("workers", "data")  # the shards' digests stand for the data
# The fourds packages whose code shapes the training trajectory (`code_digest`).
TRAJECTORY_PACKAGES = ("models", "train", "data", "config", "world")


def peak_learning_rate(cfg: PretrainConfig, width: int) -> float:
    """The width-scaled peak learning rate of an encoder `width` wide: cfg.lr, scaled by
    cfg.lr_reference_width / width for encoders wider than the reference (Adam's update size
    per weight shrinks with width as 1/width; 0 turns the scaling off)."""
    if cfg.lr_reference_width and width > cfg.lr_reference_width:
        return cfg.lr * cfg.lr_reference_width / width
    return cfg.lr


def peak_learning_rates(cfg: PretrainConfig, width: int) -> tuple[float, float | None]:
    """(the peak rate of every parameter, that of the hidden matrices or None when they have
    no rate of their own), by cfg.lr_scaling: "all" scales every rate with width, "hidden"
    only the hidden matrices' (see PretrainConfig)."""
    scaled = peak_learning_rate(cfg, width)
    if cfg.lr_scaling == "all" or scaled == cfg.lr:
        return scaled, None
    return cfg.lr, scaled


def learning_rate(step: int, cfg: PretrainConfig, peak: float) -> float:
    """Linear warm-up to `peak` over cfg.warmup_steps, then cosine decay to zero."""
    if step < cfg.warmup_steps:
        return peak * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.5 * peak * (1.0 + math.cos(math.pi * progress))


def local_rows(batch_size: int, env: DistEnv) -> range:
    """This rank's rows of the global batch."""
    if batch_size % env.world_size:
        raise ConfigError(
            f"pretrain.batch_size={batch_size} is not divisible by the {env.world_size} processes"
        )
    per_rank = batch_size // env.world_size
    return range(env.rank * per_rank, (env.rank + 1) * per_rank)


@functools.cache
def code_digest() -> str:
    """sha256 of the fourds source pretraining runs: every .py file of TRAJECTORY_PACKAGES in
    the folder fourds is imported from, by path relative to it, in sorted order (computed once
    per process)."""
    root = Path(__file__).resolve().parents[1]  # the fourds package
    paths = sorted(path for name in TRAJECTORY_PACKAGES for path in (root / name).rglob("*.py"))
    digest = hashlib.sha256()
    for path in paths:
        name, content = path.relative_to(root).as_posix(), hashlib.sha256(path.read_bytes())
        digest.update(f"{name} {content.hexdigest()}\n".encode())
    return digest.hexdigest()


def run_fingerprint(spec: PretrainSpec, shard_digests: list[str]) -> str:
    """Hash of everything that shapes the training trajectory (16 hex digits)."""
    trajectory = {
        name: value
        for name, value in dataclasses.asdict(spec.pretrain).items()
        if name not in EXECUTION_ONLY
    }
    content = {
        "model": dataclasses.asdict(spec.model),
        "mae": dataclasses.asdict(spec.mae),
        "curate": {
            name: value
            for name, value in dataclasses.asdict(spec.curate).items()
            if name not in CURATE_EXECUTION_ONLY
        },
        "pretrain": trajectory,
        "attention": spec.attention,
        "shards": shard_digests,
        "code": code_digest(),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def check_segments(
    shape: tuple[int, ...], sample_clip: ClipSampler, resolution: int, shards: str
) -> None:
    """The pretrain segments [F, S, S, 3] in `shards` fit the params: windows of the clip
    sampler fit in F frames, and S is the model's input size (curate.resolution).

    Raises:
        ShardError: they do not (shards curated with other params), naming both sides.
    """
    frames, size = shape[0], shape[1]
    if frames < sample_clip.span:
        raise ShardError(
            f"the pretrain shards in {shards} hold {frames}-frame segments; a window of "
            f"curate.clip_frames={sample_clip.frames} at pretrain.frame_stride="
            f"{sample_clip.stride} needs {sample_clip.span}: curate again with these params "
            "(`dvc repro curate`)"
        )
    if size != resolution:
        raise ShardError(
            f"the pretrain shards in {shards} hold {size}x{size} frames and the params' model "
            f"reads curate.resolution={resolution}: curate again with these params (`dvc repro "
            "curate`) or pretrain with the params the shards were curated with"
        )


@dataclasses.dataclass(frozen=True)
class PretrainResult:
    """What a pretraining run produced.

    state_dict: the full (unsharded) MAE weights on rank 0; None on the other ranks.
    curve: one {"step", "loss", "lr"} per logging window (the loss averaged over the window).
    heldout_curve: one {"step", "heldout_loss"} per held-out evaluation (step 0 first, the last
        step last; empty when pretrain.heldout_clips is 0).
    heldout_clips: the number of held-out clips the curve averages over.
    start: the step the run resumed from (0 for a fresh run).
    seconds: wall time of the steps this process ran.
    peak_flops: the dense peak FLOP/s of all the job's accelerators together (one device's
        times the processes, one per device), None where unknown (MFU is not reported). The
        job's clips/s over it is the MFU of each device.
    shard_digests: path or URL -> sha256 of the pretrain shards read (curate's, from the index).
    processes: the number of processes that trained together.
    """

    state_dict: dict[str, torch.Tensor] | None
    curve: list[dict[str, float]]
    heldout_curve: list[dict[str, float]]
    heldout_clips: int
    start: int
    seconds: float
    encoder_params: int
    tokens_per_clip: int
    flops_per_clip: int
    peak_flops: float | None
    shard_digests: dict[str, str]
    processes: int


@dataclasses.dataclass
class Training:
    """A run's training state, built by `build_training`: what `train` steps and checkpoints.

    curve: one {"step", "loss", "lr"} per logging window so far; heldout: the held-out clips
    (None: no curve) and heldout_curve their loss so far, one {"step", "heldout_loss"} per
    evaluation; start: the step the run (re)started from; last_good: its last checkpoint, None
    before the first.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    loader: Any
    recipe: StepRecipe
    peak_lr: float
    resume_root: Path
    heldout: HeldoutClips | None = None
    curve: list[dict[str, float]] = dataclasses.field(default_factory=list)
    heldout_curve: list[dict[str, float]] = dataclasses.field(default_factory=list)
    start: int = 0
    last_good: Path | None = None


def clip_sampler(spec: PretrainSpec) -> ClipSampler:
    """The sampler of pretraining clips (window, stride, crop) from curated segments."""
    cfg = spec.pretrain
    return ClipSampler(spec.curate.clip_frames, cfg.frame_stride, cfg.crop_scale, cfg.crop_aspect)


def open_segments(spec: PretrainSpec, shard_dir: str | Path) -> SegmentStore | None:
    """The pretrain segments (mapped from `shard_dir`, or fetched from pretrain.shards_url
    segment by segment as clips are sampled), checked to fit the clip sampler; None when the
    clips are rendered from the world (pretrain.source 'world').

    Raises:
        ShardError: they do not fit (`check_segments`).
    """
    cfg, curate = spec.pretrain, spec.curate
    if cfg.source == "world":
        return None
    shards = cfg.shards_url or str(shard_dir)
    segments = SegmentStore.open(shards, "pretrain")
    check_segments(segments.shape, clip_sampler(spec), curate.resolution, shards)
    return segments


def clip_loader(
    spec: PretrainSpec,
    segments: SegmentStore | None,
    sample_masks,
    rows: range,
    device: torch.device,
):
    """This process's batches: clips sampled from the pretrain `segments` by the shard loader
    (fourds.train.loader), or, for pretrain.source 'world' (`segments` None), rendered on
    `device` (fourds.train.world_clips)."""
    cfg = spec.pretrain
    if segments is None:
        compiled = cfg.compile and torch.device(device).type == "cuda"
        world = world_clip_spec(spec)
        return WorldClips(world, cfg.seed, cfg.steps, rows, sample_masks, device, compiled)
    example = ClipExample(segments, clip_sampler(spec), cfg.seed, sample_masks)
    settings = {"steps": cfg.steps, "workers": cfg.loader_workers, "prefetch": cfg.prefetch}
    return configured(pretrain_loader, settings, example, rows=rows, device=device)


def build_training(
    spec: PretrainSpec,
    segments: SegmentStore | None,
    shard_dir: str | Path,
    resume_root: Path,
    device: torch.device,
    env: DistEnv,
) -> Training:
    """The model (sharded by the parallel plan), optimizer, LR schedule, loader, step recipe
    and held-out clips of a fresh run (`segments` None: clips rendered from the world)."""
    cfg = spec.pretrain
    plan = ParallelPlan.from_spec(spec, sharded=env.sharded)
    model = parallelize(lambda: scale_mae(spec), plan, device, cfg.seed)
    enable_tf32(device, cfg.precision)
    peak_lr, hidden_lr = peak_learning_rates(cfg, spec.model.width)
    rates = {"weight_decay": cfg.weight_decay, "lr": peak_lr, "hidden_lr": hidden_lr}
    optimizer = configured(adamw, rates, model, device=device)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate(step, cfg, peak_lr) / peak_lr
    )
    rows = local_rows(cfg.batch_size, env)
    # Unsharded bf16 runs use autocast; sharded ones get bf16 from the FSDP policy.
    autocast = torch.autocast(
        device.type, torch.bfloat16, enabled=cfg.precision == "bf16" and not env.sharded
    )
    crop = view_crop(device, plan.compile)
    recipe = StepRecipe.in_micro_batches(len(rows), cfg.micro_batch, cfg.grad_clip, autocast, crop)
    loader = clip_loader(spec, segments, model.sample_masks, rows, device)
    heldout = heldout_clips(spec, shard_dir, model.sample_masks, device)
    return Training(model, optimizer, schedule, loader, recipe, peak_lr, resume_root, heldout)


def resume(training: Training, env: DistEnv, label: str) -> None:
    """Restore the run's last checkpoint under its resume root, if there is one: weights,
    optimizer, schedule, curve, loader and RNG states."""
    last_good = latest_checkpoint(training.resume_root)
    if last_good is None:
        return
    trainer, rank_state = load_checkpoint(last_good, training.model, training.optimizer, env)
    training.schedule.load_state_dict(trainer["schedule"])
    training.curve, training.start = trainer["curve"], trainer["step"]
    training.heldout_curve = trainer["heldout_curve"]
    training.loader.load_state_dict(rank_state["loader"])
    set_rng_state(rank_state["rng"])
    training.last_good = last_good
    if env.is_main:
        print(f"{label}: resuming from {last_good} (step {training.start})", flush=True)


def window_mean(
    training: Training, window: list[torch.Tensor], step: int, env: DistEnv, label: str
) -> float:
    """The mean loss of the logging window [per-step losses] that ends after `step` steps, over
    every rank (one all-reduce: non-finite on any rank makes the mean non-finite).

    Raises:
        FloatingPointError: it is not finite (the last good checkpoint is kept).
    """
    loss = mean_over_ranks(torch.stack(window).mean(), env)
    if math.isfinite(loss):
        return loss
    last_good = training.last_good
    kept = f"the last good checkpoint {last_good} is kept" if last_good else "no checkpoint yet"
    raise FloatingPointError(
        f"{label}: the loss became {loss} between steps {step - len(window) + 1} and {step}; "
        f"{kept}. Lower pretrain.lr (peak now {training.peak_lr}) or raise "
        "pretrain.warmup_steps"
    )


def maybe_checkpoint(training: Training, step: int, cfg: PretrainConfig, env: DistEnv) -> None:
    """Save a resumable checkpoint after `step` steps every pretrain.checkpoint_every steps
    (not after the last: the stage writes the final weights)."""
    if not cfg.checkpoint_every or step % cfg.checkpoint_every or step >= cfg.steps:
        return
    trainer = {
        "schedule": training.schedule.state_dict(),
        "curve": training.curve,
        "heldout_curve": training.heldout_curve,
    }
    rank_state = {"loader": training.loader.state_dict(), "rng": rng_state()}
    training.last_good = save_checkpoint(
        training.resume_root, step, training.model, training.optimizer, trainer, rank_state,
        env, cfg.keep_checkpoints,
    )  # fmt: skip


def evaluate_heldout(
    training: Training, step: int, cfg: PretrainConfig, monitor: Monitor, env: DistEnv
) -> None:
    """Append the held-out loss after `step` steps to the held-out curve where it is due:
    before the first step, every cfg.heldout_every steps and after the last."""
    due = step == 0 or step % cfg.heldout_every == 0 or step == cfg.steps
    if training.heldout is None or not due:
        return
    passes = training.recipe.passes[0]
    loss = heldout_loss(
        training.model, training.heldout, passes.stop - passes.start, training.recipe.autocast, env
    )
    training.heldout_curve.append({"step": step, "heldout_loss": loss})
    monitor.log_heldout(step, loss)


def train(training: Training, cfg: PretrainConfig, monitor: Monitor, env: DistEnv) -> None:
    """Train from `training.start` to cfg.steps, logging each window, measuring the held-out
    loss and checkpointing."""
    if training.start == 0:
        evaluate_heldout(training, 0, cfg, monitor, env)
    window = []
    for step, batch in enumerate(training.loader, start=training.start + 1):  # steps done
        # On a GPU the batch was copied ahead on the loader's stream (no host synchronisation).
        loss = step_on_batch(training.model, training.optimizer, batch, training.recipe)
        training.schedule.step()
        window.append(loss)
        monitor.step_done()
        evaluate_heldout(training, step, cfg, monitor, env)
        if step % cfg.log_every and step != cfg.steps:
            continue
        window_loss = window_mean(training, window, step, env, monitor.run.desc)
        window = []
        lr = learning_rate(step - 1, cfg, training.peak_lr)
        training.curve.append({"step": step, "loss": window_loss, "lr": lr})
        monitor.log(step, window_loss, lr)
        maybe_checkpoint(training, step, cfg, env)


def pretrain(
    spec: PretrainSpec,
    shard_dir: str | Path,
    out_dir: str | Path,
    device: torch.device,
    env: DistEnv,
) -> PretrainResult:
    """Pretrain `spec`'s scale on the pretrain shards in `shard_dir` (or at
    pretrain.shards_url; or on rendered clips, pretrain.source 'world'), resuming from
    `out_dir`.

    Under torchrun the global batch is split over the processes and the model is sharded
    with FSDP2 (see fourds.train.distributed); a plain run is one unsharded process. Every
    rank returns the result; only rank 0's holds the full state dict.

    Run it inside `fourds.train.loader.joined_loader_threads`, which stops the loader's
    threads once it returns or raises.

    Raises:
        FloatingPointError: the loss became non-finite (the last good checkpoint is kept).
        ShardError: the shards do not fit the params (`check_segments`).
    """
    cfg, out_dir, label = spec.pretrain, Path(out_dir), f"pretrain {spec.scale}"
    segments = open_segments(spec, shard_dir)
    claim_output_directory(out_dir, (shard_dir,))
    # the digests are curate's, from the shard index: no rank hashes the shards (none are read
    # when the world renders the clips: the params and the code fix them)
    digests = {} if segments is None else segments.digests
    resume_root = out_dir / "resume" / run_fingerprint(spec, list(digests.values()))
    training = build_training(spec, segments, shard_dir, resume_root, device, env)
    resume(training, env, label)
    flops_per_clip = training_flops_per_clip(
        spec.model, spec.mae, spec.curate.clip_frames, spec.curate.resolution
    )
    tokens_per_clip = training.model.encoder.num_tokens
    peak = job_peak_flops(device, cfg.precision, env.world_size)  # the clips/s are the job's
    run = RunShape(label, cfg.steps, cfg.batch_size, tokens_per_clip, flops_per_clip, peak)
    monitor = Monitor(out_dir, run, training.start, env.is_main)
    started = time.perf_counter()
    try:
        train(training, cfg, monitor, env)
    finally:
        monitor.close()
    seconds = time.perf_counter() - started
    state_dict = full_state_dict(training.model, env)
    return PretrainResult(
        state_dict=state_dict if env.is_main else None,
        curve=training.curve,
        heldout_curve=training.heldout_curve,
        heldout_clips=0 if training.heldout is None else len(training.heldout),
        start=training.start,
        seconds=seconds,
        encoder_params=count_parameters(training.model.encoder),
        tokens_per_clip=tokens_per_clip,
        flops_per_clip=flops_per_clip,
        peak_flops=peak,
        shard_digests=digests,
        processes=env.world_size,
    )
