"""Pretraining step throughput and peak memory per ladder scale that fits this machine.

Scales and their params (composed from experiments/ as `fourds params` does):

- the embedded ladder's scales (the default params.yaml; cpu_s and cpu_l, with cpu_m before
  study log section 32, as in results/pretrain_step.json): 8x64x64 clips, tubelet
  2x8x8 (256 tokens), MAE-ST decoder, 90% masking, pretrain.batch_size (16);
- 4ds_s, 4ds_b: the 4ds ladder (`fourds params ladder=4ds`): 16x224x224 clips, tubelet 2x16x16
  (1568 tokens), the 4DS MAE config (95% masking, query decoding), at a small batch (2) instead
  of the ladder's 1024.

Each scale runs in its own freshly spawned process: build the MAE and AdamW (the pretrain
stage's lr, weight decay, betas 0.9/0.95 and activation checkpointing setting) and a batch of
random clips, then run warm-up steps and timed steps. Reported:

- median step time of the timed steps, clips/s, tokens/s through the encoder (visible tokens;
  the whole clip's tokens as well), model FLOPs (forward + backward per clip, counted with
  torch's FlopCounterMode, fourds.models.flops) and the achieved FLOP/s;
- memory (CPU: resident set; GPU: torch.cuda.max_memory_allocated): the peak growth during the
  first step over what was in use just before it (weights and the batch), i.e. gradients, AdamW
  state and activations; and the absolute peak during the timed steps. Growth over later steps
  is not meaningful on the CPU: freed memory stays in the allocator and in the RSS.

Attention is sdpa and precision fp32 on the CPU; on a GPU the params' precision is used.

Run: python benchmarks/pretrain_step.py [--quick]
"""

from __future__ import annotations

import contextlib
import dataclasses
import time

import harness
import setups
import torch

from fourds.config import Params
from fourds.models.factory import build_encoder
from fourds.models.flops import training_flops_per_clip
from fourds.models.vit import count_parameters
from fourds.train.parallelize import apply_activation_checkpointing

NAME = "pretrain_step"


@dataclasses.dataclass(frozen=True)
class ScaleRun:
    """What to measure for one scale: its params, the batch, `warmup` untimed steps (the first
    of which is the memory-measured first step) and `steps` timed steps."""

    scale: str
    params: Params
    batch: int
    warmup: int
    steps: int


def measure_scale(run: ScaleRun) -> dict:
    """In this process: build, measure the first step's memory, warm up, time `run.steps` steps."""
    device = harness.default_device()
    params, pretrain = run.params, run.params.pretrain
    shape = setups.ladder_shape(params, run.scale)
    model = setups.initial_mae(shape, params.mae, "sdpa", device, seed=pretrain.seed)
    if pretrain.checkpoints(run.scale):
        apply_activation_checkpointing(model)
    optimizer = setups.adamw(model, pretrain.lr, pretrain.weight_decay)
    video = setups.random_video(shape, run.batch, device)
    step = setups.mae_step(model, video, optimizer, seed=pretrain.seed)
    precision = pretrain.precision if device.type == "cuda" else "fp32"
    autocast = (
        torch.autocast("cuda", torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    )

    def one_step() -> None:
        with autocast:
            step()

    _, first_step = harness.measure_peak_memory(one_step, device)
    for _ in range(run.warmup - 1):
        one_step()
    timings, timed = harness.measure_peak_memory(
        lambda: harness.time_interleaved({"step": one_step}, device, 0, run.steps), device
    )
    memory = {
        "metric": first_step["metric"],
        "first_step_growth_mib": first_step["peak_growth_mib"],
        "before_first_step_mib": first_step["before_mib"],
        "timed_steps_peak_mib": timed["peak_mib"],
    }
    return {"step_time": timings.summary("step"), "memory": memory, "precision": precision}


def summarize(run: ScaleRun, measured: dict) -> dict:
    """Throughput figures of one scale from its measured step time."""
    params = run.params
    shape = setups.ladder_shape(params, run.scale)
    step_s = measured["step_time"]["median_s"]
    visible = setups.visible_tokens(shape.tokens, params.mae.mask_ratio)
    flops = training_flops_per_clip(shape.model, params.mae, shape.frames, shape.size)
    with torch.device("meta"):
        encoder_params = count_parameters(build_encoder(shape.model, shape.frames, shape.size))
    return {
        "ladder": params.ladder.name,
        "encoder_params": encoder_params,
        "clip": [shape.frames, shape.size, shape.size, 3],
        "tokens_per_clip": shape.tokens,
        "visible_tokens_per_clip": visible,
        "mae": dataclasses.asdict(params.mae),
        "batch": run.batch,
        "activation_checkpointing": params.pretrain.checkpoints(run.scale),
        "precision": measured["precision"],
        "warmup_steps": run.warmup,
        "timed_steps": run.steps,
        "step_time": measured["step_time"],
        "clips_per_s": round(run.batch / step_s, 2),
        "encoder_tokens_per_s": round(run.batch * visible / step_s, 1),
        "clip_tokens_per_s": round(run.batch * shape.tokens / step_s, 1),
        "train_gflops_per_clip": round(flops / 1e9, 2),
        "achieved_gflops_per_s": round(flops * run.batch / step_s / 1e9, 1),
        "memory": measured["memory"],
    }


def plan(quick: bool) -> list[ScaleRun]:
    """The scales to measure: the embedded ladder and the two smallest 4DS scales."""
    embedded = setups.compose_ladder()
    if quick:
        return [ScaleRun("cpu_s", embedded, batch=2, warmup=1, steps=2)]
    paper = setups.compose_ladder("ladder=4ds")
    runs = [
        ScaleRun(scale, embedded, embedded.pretrain.batch_size, warmup=2, steps=8)
        for scale in embedded.ladder.scales
    ]
    runs += [ScaleRun(scale, paper, batch=2, warmup=1, steps=4) for scale in ("4ds_s", "4ds_b")]
    return runs


def main() -> None:
    started = time.perf_counter()
    args = harness.parse_args(__doc__.splitlines()[0])
    device = harness.default_device()
    results = {}
    for run in plan(args.quick):
        results[run.scale] = summarize(run, harness.run_in_fresh_process(measure_scale, run))
        row = results[run.scale]
        print(
            f"{run.scale}: {row['clips_per_s']} clips/s, "
            f"first step +{row['memory']['first_step_growth_mib']} MiB",
            flush=True,
        )
    config = {
        "quick": args.quick,
        "params_source": "experiments/ composed as `fourds params` (embedded) and "
        "`fourds params ladder=4ds`; attention sdpa",
        "data": "random clips (uniform noise), generated once per scale",
        "step": "zero_grad + forward + backward + AdamW step (no grad clipping)",
        "memory": "first_step_growth: peak during the first step minus memory in use before it "
        "(gradients, AdamW state, activations); timed_steps_peak: absolute peak of the process "
        "during the timed steps",
    }
    harness.write_result(NAME, args.out, device, config, results, started)


if __name__ == "__main__":
    main()
