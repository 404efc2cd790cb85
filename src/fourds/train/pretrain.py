"""MAE pretraining of one ladder scale on the curated pretrain segments: the training loop.

`pretrain(...)` trains and returns the final weights and the loss curve; the pretrain stage
(fourds.stages.pretrain) writes them out. While training it writes, under `out_dir`:

    live/           DVCLive metrics and plots (see fourds.train.monitor; no DVC output)
    resume/<fingerprint>/step-N/
                    resumable checkpoints (see fourds.train.checkpoint), every
                    `pretrain.checkpoint_every` steps. The fingerprint hashes everything that
                    shapes the training trajectory (model, MAE and curate params, the
                    pretrain params but EXECUTION_ONLY ones, clip sampling included, and the
                    shard contents), so a rerun resumes only its own run's state.

A run that finds a checkpoint of its own fingerprint resumes from it and ends with exactly the
weights of an uninterrupted run (bitwise on CPU): the model, optimizer, LR schedule, loader
and RNG states are restored, and every batch is a function of (seed, step) only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path

import torch

from fourds.accelerators import job_peak_flops
from fourds.atomic import claim_output_directory
from fourds.config import ConfigError, Params, PretrainConfig
from fourds.config.operative import configured
from fourds.data.augment import ClipSampler
from fourds.data.segments import SegmentStore
from fourds.data.shards import ShardError
from fourds.models.factory import build_mae
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
from fourds.train.loader import ClipExample, pretrain_loader
from fourds.train.monitor import Monitor
from fourds.train.optim import adamw, enable_tf32
from fourds.train.parallelize import ParallelPlan, parallelize
from fourds.train.step import step_on_batch

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


def run_fingerprint(params: Params, scale: str, shard_digests: list[str]) -> str:
    """Hash of everything that shapes the training trajectory (16 hex digits)."""
    trajectory = {
        name: value
        for name, value in dataclasses.asdict(params.pretrain).items()
        if name not in EXECUTION_ONLY
    }
    content = {
        "model": dataclasses.asdict(params.model(scale)),
        "mae": dataclasses.asdict(params.mae),
        "curate": {
            name: value
            for name, value in dataclasses.asdict(params.curate).items()
            if name not in CURATE_EXECUTION_ONLY
        },
        "pretrain": trajectory,
        "attention": params.runtime.attention,
        "shards": shard_digests,
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


def micro_batches(rows: range, micro_batch: int) -> list[slice]:
    """This rank's rows split into forward/backward passes of `micro_batch` clips (0: one pass),
    as slices of the rank's batch."""
    size = micro_batch or len(rows)
    if len(rows) % size:
        raise ConfigError(
            f"pretrain.micro_batch={micro_batch} does not divide the {len(rows)} clips each "
            "process trains per step"
        )
    return [slice(start, start + size) for start in range(0, len(rows), size)]


@dataclasses.dataclass(frozen=True)
class PretrainResult:
    """What a pretraining run produced.

    state_dict: the full (unsharded) MAE weights on rank 0; None on the other ranks.
    curve: one {"step", "loss", "lr"} per logging window (the loss averaged over the window).
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
    start: int
    seconds: float
    encoder_params: int
    tokens_per_clip: int
    flops_per_clip: int
    peak_flops: float | None
    shard_digests: dict[str, str]
    processes: int


def pretrain(
    params: Params,
    scale: str,
    shard_dir: str | Path,
    out_dir: str | Path,
    device: torch.device,
    env: DistEnv,
) -> PretrainResult:
    """Pretrain scale `scale` on the pretrain shards in `shard_dir` (or at
    pretrain.shards_url), resuming from `out_dir`.

    Under torchrun the global batch is split over the processes and the model is sharded
    with FSDP2 (see fourds.train.distributed); a plain run is one unsharded process. Every
    rank returns the result; only rank 0's holds the full state dict.

    Run it inside `fourds.train.loader.joined_loader_threads`, which stops the loader's
    threads once it returns or raises.

    Raises:
        FloatingPointError: the loss became non-finite (the last good checkpoint is kept).
        ShardError: the shards do not fit the params (`check_segments`).
    """
    cfg = params.pretrain
    out_dir = Path(out_dir)
    # Mapped (local) or fetched (URL) segment by segment as clips are sampled; the digests are
    # curate's, from the shard index: no rank hashes the shards.
    shards = cfg.shards_url or str(shard_dir)
    segments = SegmentStore.open(shards, "pretrain")
    digests = segments.digests
    sample_clip = ClipSampler(
        params.curate.clip_frames, cfg.frame_stride, cfg.crop_scale, cfg.crop_aspect
    )
    check_segments(segments.shape, sample_clip, params.curate.resolution, shards)
    claim_output_directory(out_dir, (shard_dir,))
    plan = ParallelPlan.from_params(params, scale, sharded=env.sharded)
    model = parallelize(lambda: build_mae(params, scale), plan, device, cfg.seed)
    enable_tf32(device, cfg.precision)
    peak_lr, hidden_lr = peak_learning_rates(cfg, params.model(scale).width)
    rates = {"weight_decay": cfg.weight_decay, "lr": peak_lr, "hidden_lr": hidden_lr}
    optimizer = configured(adamw, rates, model, device=device)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate(step, cfg, peak_lr) / peak_lr
    )
    example = ClipExample(segments, sample_clip, cfg.seed, model.sample_masks)
    rows = local_rows(cfg.batch_size, env)
    passes = micro_batches(rows, cfg.micro_batch)
    settings = {"steps": cfg.steps, "workers": cfg.loader_workers, "prefetch": cfg.prefetch}
    loader = configured(pretrain_loader, settings, example, rows=rows, device=device)

    resume_root = out_dir / "resume" / run_fingerprint(params, scale, list(digests.values()))
    last_good = latest_checkpoint(resume_root)
    curve, start = [], 0
    if last_good is not None:
        trainer, rank_state = load_checkpoint(last_good, model, optimizer, env)
        schedule.load_state_dict(trainer["schedule"])
        curve, start = trainer["curve"], trainer["step"]
        loader.load_state_dict(rank_state["loader"])
        set_rng_state(rank_state["rng"])
        if env.is_main:
            print(f"pretrain {scale}: resuming from {last_good} (step {start})", flush=True)

    # Unsharded bf16 runs use autocast; sharded ones get bf16 from the FSDP policy.
    autocast = torch.autocast(
        device.type, torch.bfloat16, enabled=cfg.precision == "bf16" and not env.sharded
    )
    flops_per_clip = training_flops_per_clip(
        params.model(scale), params.mae, params.curate.clip_frames, params.curate.resolution
    )
    peak = job_peak_flops(device, cfg.precision, env.world_size)  # the clips/s are the job's
    tokens_per_clip = model.encoder.num_tokens
    monitor = Monitor(
        out_dir,
        f"pretrain {scale}",
        cfg.steps,
        start,
        cfg.batch_size,
        tokens_per_clip,
        flops_per_clip,
        peak,
        env.is_main,
    )
    window = []
    started = time.perf_counter()
    for step, batch in enumerate(loader, start=start + 1):  # `step` steps done after this one
        # On a GPU the batch was copied ahead on the loader's stream (no host synchronisation).
        loss = step_on_batch(model, optimizer, batch, passes, cfg.grad_clip, autocast)
        schedule.step()
        window.append(loss)
        monitor.step_done()
        if step % cfg.log_every and step != cfg.steps:
            continue
        # One all-reduce per logging window: non-finite on any rank makes the mean non-finite.
        window_loss = mean_over_ranks(torch.stack(window).mean(), env)
        if not math.isfinite(window_loss):
            monitor.close()
            kept = (
                f"the last good checkpoint {last_good} is kept"
                if last_good
                else "no checkpoint yet"
            )
            raise FloatingPointError(
                f"pretrain {scale}: the loss became {window_loss} between steps "
                f"{step - len(window) + 1} and {step}; {kept}. Lower pretrain.lr (peak now "
                f"{peak_lr}) or raise pretrain.warmup_steps"
            )
        window = []
        lr = learning_rate(step - 1, cfg, peak_lr)
        curve.append({"step": step, "loss": window_loss, "lr": lr})
        monitor.log(step, window_loss, lr)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            trainer = {"schedule": schedule.state_dict(), "curve": curve}
            rank_state = {"loader": loader.state_dict(), "rng": rng_state()}
            last_good = save_checkpoint(
                resume_root, step, model, optimizer, trainer, rank_state, env, cfg.keep_checkpoints
            )
    monitor.close()
    seconds = time.perf_counter() - started
    state_dict = full_state_dict(model, env)
    return PretrainResult(
        state_dict=state_dict if env.is_main else None,
        curve=curve,
        start=start,
        seconds=seconds,
        encoder_params=count_parameters(model.encoder),
        tokens_per_clip=tokens_per_clip,
        flops_per_clip=flops_per_clip,
        peak_flops=peak,
        shard_digests=digests,
        processes=env.world_size,
    )
