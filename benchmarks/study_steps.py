"""The pretraining steps that fit a ladder's pretraining into a time budget, from the clips/s
benchmarks/world_rate.py measured at its largest scale.

A step of scale x takes, for a batch of B clips, B x (1 / render + F_x / F_l x u_x / step): the
world's render rate is the same at every scale, and the step's time per clip scales with the
scale's training FLOPs per clip F_x against the largest's F_l, the smaller scales taken at half
the largest's utilisation (u_x = 2; u_l = 1). The steps are the most, a multiple of 16 and at
most the ladder's, whose sum over the scales fits `--seconds`; warm-up and checkpoints keep the
ladder's fractions of the steps (checkpoints at a multiple of pretrain.log_every). Prints the
Hydra overrides, e.g. `pretrain.steps=480 pretrain.warmup_steps=48 pretrain.checkpoint_every=120`.

Run: python benchmarks/study_steps.py --ladder gpu --rate world_rate.json --seconds 150
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness import REPO

from fourds.config.compose import compose_params
from fourds.config.schema import Params, parse
from fourds.models.flops import training_flops_per_clip

SMALLER_SCALE_SLOWDOWN = 2.0  # u_x of every scale but the largest
STEP_MULTIPLE = 16


def seconds_per_step(params: Params, rate: dict[str, float]) -> dict[str, float]:
    """Scale -> the estimated seconds of one pretraining step (render and train)."""
    cfg, curate = params.pretrain, params.curate
    flops = {
        scale: training_flops_per_clip(
            params.model(scale), params.mae, curate.clip_frames, curate.resolution
        )
        for scale in params.ladder.scales
    }
    largest = params.ladder.scales[-1]
    estimate = {}
    for scale, per_clip in flops.items():
        slowdown = 1.0 if scale == largest else SMALLER_SCALE_SLOWDOWN
        train = per_clip / flops[largest] * slowdown / rate["step_clips_per_s"]
        estimate[scale] = cfg.batch_size * (1 / rate["render_clips_per_s"] + train)
    return estimate


def fitted_overrides(params: Params, rate: dict[str, float], seconds: float) -> list[str]:
    """The overrides of pretrain.steps, warmup_steps and checkpoint_every that fit `seconds`."""
    cfg = params.pretrain
    per_step = sum(seconds_per_step(params, rate).values())
    fits = int(seconds / per_step) // STEP_MULTIPLE * STEP_MULTIPLE
    steps = min(cfg.steps, max(STEP_MULTIPLE, fits))
    warmup = max(1, round(steps * cfg.warmup_steps / cfg.steps))
    every = 0
    if cfg.checkpoint_every:  # a multiple of log_every, as params require
        every = max(1, round(steps * cfg.checkpoint_every / cfg.steps / cfg.log_every))
        every *= cfg.log_every
    return [
        f"pretrain.steps={steps}",
        f"pretrain.warmup_steps={warmup}",
        f"pretrain.checkpoint_every={every}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ladder", default="gpu")
    parser.add_argument("--rate", type=Path, required=True, help="world_rate.json")
    parser.add_argument("--seconds", type=float, required=True, help="for all the scales' steps")
    parser.add_argument("overrides", nargs="*", help="the study's other Hydra overrides")
    args = parser.parse_args()
    composed = compose_params([f"ladder={args.ladder}", *args.overrides], REPO / "experiments")
    params = parse(Params, composed)
    rate = json.loads(args.rate.read_text())["results"]
    print(" ".join(fitted_overrides(params, rate, args.seconds)))


if __name__ == "__main__":
    main()
