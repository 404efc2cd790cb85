"""The `pretrain` stage: MAE pretraining of one ladder scale on the curated pretrain clips.

Outputs in `out_dir`:
    checkpoint.pt   single-file weights of the MAE (see fourds.models.weights)
    loss.csv        step, loss (mean over the logging window), lr: the loss curve (DVC plot)
    metrics.json    final loss, encoder parameter count, throughput
    run.yaml        the run record
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fourds.config import ConfigError, Params, PretrainConfig
from fourds.data.curate import load_split
from fourds.models.mae import MaskedAutoencoder
from fourds.models.vit import Block, VideoViT, count_parameters
from fourds.models.weights import save_mae
from fourds.records import atomic_path, write_json, write_run_record
from fourds.runtime import setup_runtime
from fourds.train.distributed import (
    DistEnv,
    build_sharded,
    close_distributed,
    full_state_dict,
    init_distributed,
    mean_over_ranks,
    mixed_precision,
)


def learning_rate(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up to cfg.lr over cfg.warmup_steps, then cosine decay to zero."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * progress))


def sample_batch(
    clips: np.ndarray, batch_size: int, rng: np.random.Generator, rows: slice = slice(None)
) -> torch.Tensor:
    """Random clips, randomly flipped left-right; `rows` picks this rank's part of the batch.

    Every rank draws the same global batch from the same generator state and keeps its rows,
    so a data-parallel run sees exactly the clips of a single-process run.

    uint8 [N, T, H, W, 3] -> float [len(rows), T, H, W, 3] in [0, 1].
    """
    index = rng.integers(len(clips), size=batch_size)
    flip = rng.random(batch_size) < 0.5
    batch = clips[index[rows]]
    batch[flip[rows]] = batch[flip[rows], :, :, ::-1]
    return torch.from_numpy(batch).float().div_(255.0)


def build_mae(params: Params, scale: str) -> MaskedAutoencoder:
    """The MAE of one ladder scale, for the clip shape the curate params produce."""
    backend = params.runtime.attention
    encoder = VideoViT(
        params.model(scale), params.curate.clip_frames, params.curate.resolution, backend
    )
    return MaskedAutoencoder(encoder, params.mae, backend)


def local_rows(batch_size: int, env: DistEnv) -> slice:
    """This rank's rows of the global batch."""
    if batch_size % env.world_size:
        raise ConfigError(
            f"pretrain.batch_size={batch_size} is not divisible by the {env.world_size} processes"
        )
    per_rank = batch_size // env.world_size
    return slice(env.rank * per_rank, (env.rank + 1) * per_rank)


def run(
    params: Params, scale: str, shard_dir: str | Path, out_dir: str | Path, params_path: str | Path
) -> dict:
    """Pretrain scale `scale`; returns the metrics written to metrics.json (rank 0; {} elsewhere).

    Under torchrun the global batch is split over the processes and the model is sharded
    with FSDP2 (see fourds.train.distributed); a plain run is one unsharded process.
    """
    device = setup_runtime(params.runtime)
    if params.pretrain.precision == "bf16" and device.type != "cuda":
        raise ConfigError("pretrain.precision='bf16' needs CUDA: use 'fp32' on CPU")
    env = init_distributed(device)
    try:
        return _train(params, scale, shard_dir, Path(out_dir), params_path, device, env)
    finally:
        close_distributed(env)


def _train(
    params: Params,
    scale: str,
    shard_dir: str | Path,
    out_dir: Path,
    params_path: str | Path,
    device: torch.device,
    env: DistEnv,
) -> dict:
    cfg = params.pretrain
    clips = load_split(shard_dir, "pretrain")["video"]
    rows = local_rows(cfg.batch_size, env)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    mask_generator = torch.Generator().manual_seed(cfg.seed)

    if env.sharded:
        policy = mixed_precision(cfg.precision)
        model = build_sharded(lambda: build_mae(params, scale), env, device, cfg.seed, policy)
    else:
        torch.manual_seed(cfg.seed)
        model = build_mae(params, scale).to(device)
    for block in model.modules():
        if isinstance(block, Block):
            block.checkpoint_activations = cfg.activation_checkpointing
    # Unsharded bf16 runs use autocast; sharded ones get bf16 from the FSDP policy.
    autocast = torch.autocast(
        device.type, torch.bfloat16, enabled=cfg.precision == "bf16" and not env.sharded
    )
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95)
    )
    curve, window = [], []
    started = time.perf_counter()
    steps = tqdm(range(cfg.steps), desc=f"pretrain {scale}", unit="step", disable=not env.is_main)
    for step in steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg)
        video = sample_batch(clips, cfg.batch_size, rng, rows).to(device)
        keep_index, mask = model.sample_masks(cfg.batch_size, mask_generator)
        with autocast:
            loss, _ = model(video, keep_index[rows], mask[rows])
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"pretrain {scale}: loss is {loss.item()} at step {step}; lower pretrain.lr "
                f"(now {cfg.lr}) or raise pretrain.warmup_steps"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        window.append(loss.detach())
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            # One all-reduce per logging window, not per step.
            window_loss = mean_over_ranks(torch.stack(window).mean(), env)
            curve.append({"step": step + 1, "loss": window_loss, "lr": learning_rate(step, cfg)})
            steps.set_postfix(loss=f"{window_loss:.4f}")
            window = []
    seconds = time.perf_counter() - started

    state_dict = full_state_dict(model, env)
    if not env.is_main:
        return {}
    save_mae(
        out_dir / "checkpoint.pt",
        state_dict,
        params.model(scale),
        params.mae,
        params.curate.clip_frames,
        params.curate.resolution,
    )
    with atomic_path(out_dir / "loss.csv") as partial, open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["step", "loss", "lr"])
        writer.writeheader()
        writer.writerows(curve)
    tail = curve[-max(1, len(curve) // 10) :]
    metrics = {
        "scale": scale,
        "params": count_parameters(model.encoder),
        "loss": float(np.mean([point["loss"] for point in tail])),
        "steps": cfg.steps,
        "processes": env.world_size,
        "train_seconds": round(seconds, 2),
        "clips_per_second": round(cfg.steps * cfg.batch_size / seconds, 2),
    }
    write_json(out_dir / "metrics.json", metrics)
    write_run_record(
        out_dir,
        f"pretrain@{scale}",
        params_path,
        sorted(Path(shard_dir).glob("pretrain-*.npz")),
        str(device),
    )
    return metrics
