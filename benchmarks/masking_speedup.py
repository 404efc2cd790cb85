"""Masking speed-up: one MAE pretraining step at mask ratio 0.9 against 0.0, same decoder.

Shape: the 4DS-B encoder (experiments/model/4ds_b.yaml: width 768, depth 12, 12 heads, MLP 3072,
tubelet 2x16x16) on 16x224x224 clips, i.e. 1568 tokens, of which 157 stay visible at 0.9.
Decoders (MAE config experiments/mae/4ds.yaml, only `decoder` and `mask_ratio` changed):

- mae_st:  MAE-ST's transformer decoder (width 512, depth 4, 16 heads) over all 1568 tokens;
- queries: the 4DS decoding scheme (392 coarse query tokens through the last 2 encoder blocks).

A step is zero_grad + forward + backward + AdamW step on a batch of random clips
[B, 16, 224, 224, 3], sdpa attention, fp32. Both ratios are built from the same seed and timed in
turns (0.9, 0.0, 0.9, 0.0, ...); the speed-up is median(step at 0.0) / median(step at 0.9).
The MAE-ST paper reports more than 4x for 90% masking; the target here is the same.

Run: python benchmarks/masking_speedup.py [--quick]
"""

from __future__ import annotations

import dataclasses
import time

import harness
import setups
import torch

from fourds.models.flops import encoder_training_flops

NAME = "masking_speedup"
TARGET_SPEEDUP = 4.0
RATIOS = (0.9, 0.0)


def measure_decoder(
    shape: setups.Shape,
    mae: setups.MAEConfig,
    batch: int,
    warmup: int,
    repeats: int,
    device: torch.device,
) -> dict:
    """Time one training step at each of RATIOS with the decoder `mae.decoder`.

    Returns the timings per ratio, the speed-up and, for context, the encoder-only FLOP ratio
    from fourds.models.flops (what the speed-up would be if only encoder FLOPs counted).
    """
    video = setups.random_video(shape, batch, device)
    steps, models = {}, {}
    for ratio in RATIOS:
        config = dataclasses.replace(mae, mask_ratio=ratio)
        models[ratio] = setups.initial_mae(shape, config, "sdpa", device)
        steps[f"mask_{ratio}"] = setups.mae_step(models[ratio], video, setups.adamw(models[ratio]))
    timings = harness.time_interleaved(steps, device, warmup, repeats)
    masked, full = (f"mask_{ratio}" for ratio in RATIOS)
    speedup = timings.median(full) / timings.median(masked)
    flop_ratio = encoder_training_flops(
        shape.model, shape.frames, shape.size, RATIOS[1]
    ) / encoder_training_flops(shape.model, shape.frames, shape.size, RATIOS[0])
    return {
        "step_time": {name: timings.summary(name) for name in steps},
        "visible_tokens": {
            f"mask_{ratio}": setups.visible_tokens(shape.tokens, ratio) for ratio in RATIOS
        },
        "speedup": round(speedup, 2),
        "speedup_paired_median": round(timings.paired_ratio(full, masked), 2),
        "encoder_only_flop_ratio": round(flop_ratio, 2),
        "target_speedup": TARGET_SPEEDUP,
        "target_met": speedup >= TARGET_SPEEDUP,
    }


def main() -> None:
    started = time.perf_counter()
    args = harness.parse_args(__doc__.splitlines()[0])
    device = harness.default_device()
    shape, base = setups.four_ds_b(args.quick)
    batch, warmup, repeats = 2, 1, 2 if args.quick else 3
    results, configs = {}, {}
    for decoder in ("mae_st", "queries"):
        mae = dataclasses.replace(base, decoder=decoder)
        configs[decoder] = {**dataclasses.asdict(mae), "mask_ratio": list(RATIOS)}
        results[decoder] = measure_decoder(shape, mae, batch, warmup, repeats, device)
        print(f"{decoder}: speed-up {results[decoder]['speedup']}x", flush=True)
    config = {
        "quick": args.quick,
        "shape": shape.describe(),
        "mae_by_decoder": configs,
        "batch": batch,
        "attention": "sdpa",
        "precision": "fp32",
        "step": "zero_grad + forward + backward + AdamW step (no grad clipping)",
        "warmup_rounds": warmup,
        "timed_rounds": repeats,
        "order": "interleaved: mask 0.9, mask 0.0, mask 0.9, ...",
    }
    harness.write_result(NAME, args.out, device, config, results, started)


if __name__ == "__main__":
    main()
