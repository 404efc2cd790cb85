"""Does the rendered world keep up with the step? Clips per second of the world source, the model
step alone, and the two together, for one scale of a ladder that pretrains on the world.

Builds the scale's real training set-up (fourds.train.pretrain.build_training: the model as the
parallel plan compiles it, AdamW, the step recipe, the WorldClips source) and times, after two
warm-up steps, `--steps` steps of each:

- render: the world source's batches alone, as the stage iterates them (RENDER_CLIPS clips
  drawn and rendered at a time; `--steps` rounded up to whole renders);
- step: the training step alone, on one batch rendered beforehand (the model-only rate);
- full: render then step, as the pretrain stage runs them;

and the two warm-up steps' seconds, compilation included.

The issue's bar: full at least 80% of step at the ladder's largest scale (the world keeps up).

Run: python benchmarks/world_rate.py [--ladder gpu] [--scale gpu_l] [--steps 10] [--quick]
[OVERRIDE ...] (e.g. pretrain.compile=false)
(--quick: the gpu_smoke ladder's smallest scale, 2 steps, on whatever device there is).
"""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
import time
from pathlib import Path

import harness
import torch

from fourds.config.compose import compose_params
from fourds.config.schema import Params, parse
from fourds.train.distributed import DistEnv
from fourds.train.pretrain import build_training
from fourds.train.step import step_on_batch
from fourds.train.world_clips import RENDER_CLIPS


def add_arguments(parser) -> None:
    parser.add_argument("--ladder", default="gpu", help="a ladder whose pretrain.source is world")
    parser.add_argument("--scale", default="", help="the scale to time (default: the largest)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps of each kind")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the ladder's params")


def clips_per_second(work, clips: int, device: torch.device) -> float:
    """`clips` over the seconds `work()` takes, the device synchronized before and after."""
    harness.synchronize(device)
    started = time.perf_counter()
    work()
    harness.synchronize(device)
    return clips / (time.perf_counter() - started)


def main() -> None:
    started = time.perf_counter()
    args = harness.parse_args(__doc__.splitlines()[0], add_arguments)
    ladder, steps = ("gpu_smoke", 2) if args.quick else (args.ladder, args.steps)
    device = harness.default_device()
    overrides = [f"ladder={ladder}", *args.overrides]
    if not any(item.startswith("runtime.device=") for item in args.overrides):
        overrides.append(f"runtime.device={device.type}")
    params = parse(Params, compose_params(overrides, harness.REPO / "experiments"))
    scale = args.scale or params.ladder.scales[0 if args.quick else -1]
    spec = params.pretraining(scale)
    if device.type != "cuda":  # bf16 and the compiled step are the GPU's
        pretrain = dataclasses.replace(spec.pretrain, precision="fp32", compile=False)
        spec = dataclasses.replace(spec, pretrain=pretrain, attention="sdpa")
    with tempfile.TemporaryDirectory() as scratch:
        training = build_training(spec, None, scratch, Path(scratch), device, DistEnv())
    world, clips = training.loader, spec.pretrain.batch_size

    def train(batch) -> None:
        step_on_batch(training.model, training.optimizer, batch, training.recipe)

    def batches(first: int, count: int) -> list:
        """Steps first, ..., first + count - 1 of the world source, as the stage iterates it."""
        world.load_state_dict({"step": first})
        return list(itertools.islice(world, count))

    ahead = max(1, RENDER_CLIPS.get(device.type, 0) // clips)
    steps = -(-steps // ahead) * ahead  # whole renders
    world.steps = ahead + 2 * steps  # the timed steps' keys, past the ladder's steps if need be
    warming = time.perf_counter()
    for batch in batches(0, 2):  # warm-up: compilation, allocator, autotuning
        train(batch)
    harness.synchronize(device)
    warmup_seconds = time.perf_counter() - warming
    fixed = world.batch(2)

    def render() -> None:
        assert len(batches(ahead, steps)) == steps

    def step() -> None:
        for _ in range(steps):
            train(fixed)

    def full() -> None:
        for batch in batches(ahead + steps, steps):
            train(batch)

    rates = {
        "render_clips_per_s": clips_per_second(render, steps * clips, device),
        "step_clips_per_s": clips_per_second(step, steps * clips, device),
        "full_clips_per_s": clips_per_second(full, steps * clips, device),
    }
    rates = {name: round(rate, 1) for name, rate in rates.items()}
    rates["full_over_step"] = round(rates["full_clips_per_s"] / rates["step_clips_per_s"], 3)
    rates["warmup_seconds"] = round(warmup_seconds, 1)  # two steps, compilation included
    config = {
        "ladder": ladder,
        "scale": scale,
        "batch_size": clips,
        "clip": [spec.curate.clip_frames, spec.curate.resolution, spec.curate.resolution],
        "timed_steps": steps,
        "render_clips": ahead * clips,
        "precision": spec.pretrain.precision,
        "compile": spec.pretrain.compile,
        "world_supersample": spec.pretrain.world_supersample,
        "overrides": args.overrides,
    }
    print(f"world_rate {ladder}/{scale} on {device}: {rates}")
    harness.write_result("world_rate", args.out, device, config, rates, started)


if __name__ == "__main__":
    main()
