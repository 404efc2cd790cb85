"""The `pretrain` stage: MAE pretraining of one ladder scale on the curated pretrain segments.

Outputs in `out_dir`:
    checkpoint.pt   single-file weights of the MAE (see fourds.models.weights)
    loss.csv        step, loss (mean over the logging window), lr: the training loss curve
    heldout.csv     step, train_flops (training FLOPs spent so far), heldout_loss: the loss on
                    the fixed held-out clips and masks (fourds.train.heldout), the curve that
                    runs of other scales, seeds and learning rates are compared on
    metrics.json    final training loss (the last tenth of the windows), final held-out loss,
                    encoder parameter count, steps, FLOPs
    run.yaml        the run record, and operative.gin (fourds.records)
    execution.yaml  the run's seconds, throughput, the step it resumed from, its processes
    live/, resume/  written while training (see fourds.train.pretrain)

`launcher.kind` decides where the training runs: here, or in processes that a launcher starts
with this same command (fourds.train.launch).
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import torch.distributed as dist

from fourds import layout
from fourds.accelerators import model_flops_utilisation
from fourds.atomic import atomic_path, check_output_directory, claim_output_directory, write_json
from fourds.config import ConfigError, Params, PretrainSpec
from fourds.config.operative import stage
from fourds.models.weights import save_weights
from fourds.records import write_run_record
from fourds.runtime import setup_runtime
from fourds.train.distributed import close_distributed, init_distributed
from fourds.train.launch import launch, launched_here
from fourds.train.loader import joined_loader_threads
from fourds.train.pretrain import PretrainResult, pretrain


@stage
def run(
    params: Params,
    scale: str,
    shard_dir: str | Path,
    out_dir: str | Path,
    params_path: str | Path,
) -> int:
    """Pretrain scale `scale` here or under the launcher; returns the exit status."""
    spec = params.pretraining(scale)  # an unknown scale fails here, before any data is loaded
    check_output_directory(out_dir, (shard_dir,))
    if not launched_here(params.launcher):
        # marked fourds' own before the launcher writes there (<out>/slurm), so the launched
        # processes may claim it
        claim_output_directory(out_dir, (shard_dir,))
        argv = ["pretrain", "--params", str(Path(params_path).resolve()), "--scale", scale]
        argv += ["--curated", str(Path(shard_dir).resolve()), "--out", str(Path(out_dir).resolve())]
        return launch(argv, params.launcher, Path(out_dir).resolve() / "slurm")

    runtime, device = setup_runtime(params.runtime)
    spec = dataclasses.replace(spec, attention=runtime.attention)  # the backend that runs here
    if spec.pretrain.precision == "bf16" and device.type != "cuda":
        raise ConfigError("pretrain.precision='bf16' needs CUDA: use 'fp32' on CPU")
    env = init_distributed(device)
    try:
        with joined_loader_threads():
            result = pretrain(spec, shard_dir, out_dir, device, env)
        if env.is_main:
            write_outputs(result, spec, Path(out_dir), params_path, str(device))
        if env.sharded:
            dist.barrier()  # every rank is done with its collectives before any one leaves
    finally:
        close_distributed(env)
    return 0


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    """`rows` as a CSV file with a header of `columns`, written atomically."""
    with atomic_path(path) as partial, open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_outputs(
    result: PretrainResult,
    spec: PretrainSpec,
    out_dir: Path,
    params_path: str | Path,
    device: str,
) -> dict:
    """Write checkpoint.pt, loss.csv, heldout.csv, metrics.json (results only), the run record
    and the execution record (seconds, throughput, resumption, processes); returns the metrics."""
    cfg, scale = spec.pretrain, spec.scale
    save_weights(out_dir / "checkpoint.pt", result.state_dict, spec)
    write_csv(out_dir / "loss.csv", ["step", "loss", "lr"], result.curve)
    flops_per_step = result.flops_per_clip * cfg.batch_size
    heldout = [
        {"step": point["step"], "train_flops": point["step"] * flops_per_step, **point}
        for point in result.heldout_curve
    ]
    write_csv(out_dir / "heldout.csv", ["step", "train_flops", "heldout_loss"], heldout)
    tail = result.curve[-max(1, len(result.curve) // 10) :]
    clips_per_second = (cfg.steps - result.start) * cfg.batch_size / result.seconds
    metrics = {
        "scale": scale,
        "params": result.encoder_params,
        "loss": float(np.mean([point["loss"] for point in tail])),
        "steps": cfg.steps,
        "train_flops_per_clip": result.flops_per_clip,
        "pretrain_flops": flops_per_step * cfg.steps,
    }
    if heldout:  # the whole curve: heldout.csv; its clips: the execution record
        metrics["heldout_loss"] = heldout[-1]["heldout_loss"]
    execution = {
        "resumed_from_step": result.start,
        "heldout_clips": result.heldout_clips,
        "processes": result.processes,
        "train_seconds": round(result.seconds, 2),
        "clips_per_second": round(clips_per_second, 2),
        "tokens_per_second": round(clips_per_second * result.tokens_per_clip, 1),
    }
    mfu = model_flops_utilisation(result.flops_per_clip, clips_per_second, result.peak_flops)
    if mfu is not None:
        execution["mfu"] = round(mfu, 4)
    write_json(out_dir / "metrics.json", metrics)
    shards = list(result.shard_digests)  # paths or URLs, hashed by curate
    write_run_record(
        out_dir, layout.pretrain(scale).name, params_path, shards, device, result.shard_digests,
        execution, attention=spec.attention,
    )  # fmt: skip
    return metrics
