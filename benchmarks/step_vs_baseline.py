"""One pretraining step of fourds' MAE, as the 4DS ladder configures it, against a baseline.

Baseline: `naive_mae_st.NaiveMAEST`, a straightforward MAE-ST-style implementation (explicit
softmax attention, a full transformer decoder of width 512, depth 4, 16 heads over all tokens).
Ours: the MAE config of `fourds params ladder=4ds` (experiments/mae/4ds.yaml: 95% random
masking, the 4DS query decoding scheme) with sdpa attention, fp32. Both use the 4DS-B encoder
(width 768, depth 12, 12 heads, MLP 3072, tubelet 2x16x16) on 16x224x224 clips (1568 tokens,
78 visible) at the same batch.

To show where a difference comes from, three more variants run in the same rounds:
ours with decoder=mae_st and sdpa (the baseline's decoding, our attention kernel), ours with
decoder=mae_st and the `math` backend (our code doing the baseline's arithmetic: it should be
about as fast as the baseline), ours with activation checkpointing, which the 4ds ladder
turns on for the scales that need it (pretrain.activation_checkpointing) to save GPU memory,
and ours with every transformer block compiled (`pretrain.compile`: torch.compile per block, as
fourds.train.parallelize applies it; the warm-up round compiles).

All variants are timed in turns, each round running every variant once; figures are medians.
Target: ours at least 1.3x faster than the baseline on the CPU.

Run: python benchmarks/step_vs_baseline.py [--quick]
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import harness
import setups
import torch
from naive_mae_st import NaiveMAEST

from fourds.models.vit import count_parameters
from fourds.train.parallelize import apply_activation_checkpointing, apply_compile

NAME = "step_vs_baseline"
TARGET_SPEEDUP = 1.3


def build_baseline(
    shape: setups.Shape, mae: setups.MAEConfig, device: torch.device, seed: int = 0
) -> NaiveMAEST:
    """The baseline at `shape`'s encoder, `mae`'s decoder width/depth/heads and mask ratio."""
    torch.manual_seed(seed)
    cfg = shape.model
    model = NaiveMAEST(
        shape.frames,
        shape.size,
        cfg.tubelet,
        cfg.width,
        cfg.depth,
        cfg.heads,
        cfg.mlp_dim,
        mae.decoder_width,
        mae.decoder_depth,
        mae.decoder_heads,
        mae.mask_ratio,
    )
    return model.to(device).train()


def baseline_step(
    model: NaiveMAEST, video: torch.Tensor, seed: int = 0
) -> Callable[[], torch.Tensor]:
    """A training step of the baseline on `video` [B, T, H, W, 3], fresh masks every step."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = setups.adamw(model)
    return setups.training_step(model, optimizer, lambda: model(video, generator)[0])


def wrapped(model: torch.nn.Module, wrap: Callable[[torch.nn.Module], None]) -> torch.nn.Module:
    """`model` after `wrap` changed its blocks in place (as fourds.train.parallelize does)."""
    wrap(model)
    return model


def variant_descriptions(mae_st: setups.MAEConfig) -> dict[str, str]:
    """One line per variant, for the result file and the README."""
    decoder = f"{mae_st.decoder_width}/{mae_st.decoder_depth}/{mae_st.decoder_heads}"
    return {
        "ours_4ds": "fourds MAE, decoder=queries, sdpa (the 4ds ladder's MAE config)",
        "ours_mae_st_sdpa": f"fourds MAE, decoder=mae_st ({decoder}), sdpa",
        "ours_mae_st_math": f"fourds MAE, decoder=mae_st ({decoder}), math (explicit softmax)",
        "ours_4ds_activation_checkpointing": "ours_4ds with activation checkpointing on",
        "ours_4ds_compiled": "ours_4ds with torch.compile on every transformer block",
        "baseline": f"naive_mae_st.py: explicit attention, full decoder ({decoder})",
    }


def main() -> None:
    started = time.perf_counter()
    args = harness.parse_args(__doc__.splitlines()[0])
    device = harness.default_device()
    shape, ours = setups.four_ds_b(args.quick)
    batch, warmup, repeats = 2, 1, 2 if args.quick else 5
    mae_st = dataclasses.replace(ours, decoder="mae_st")
    video = setups.random_video(shape, batch, device)

    models = {
        "ours_4ds": setups.initial_mae(shape, ours, "sdpa", device),
        "ours_mae_st_sdpa": setups.initial_mae(shape, mae_st, "sdpa", device),
        "ours_mae_st_math": setups.initial_mae(shape, mae_st, "math", device),
        "ours_4ds_activation_checkpointing": wrapped(
            setups.initial_mae(shape, ours, "sdpa", device), apply_activation_checkpointing
        ),
        "ours_4ds_compiled": wrapped(
            setups.initial_mae(shape, ours, "sdpa", device), apply_compile
        ),
        "baseline": build_baseline(shape, mae_st, device),
    }
    steps = {
        name: setups.mae_step(model, video, setups.adamw(model))
        for name, model in models.items()
        if name != "baseline"
    }
    steps["baseline"] = baseline_step(models["baseline"], video)
    timings = harness.time_interleaved(steps, device, warmup, repeats)

    baseline = timings.median("baseline")
    speedup = baseline / timings.median("ours_4ds")
    results = {
        "step_time": {name: timings.summary(name) for name in steps},
        "speedup_vs_baseline": {name: round(baseline / timings.median(name), 2) for name in steps},
        "speedup_vs_baseline_paired_median": {
            name: round(timings.paired_ratio("baseline", name), 2) for name in steps
        },
        "parameters": {name: count_parameters(model) for name, model in models.items()},
        "target_speedup": TARGET_SPEEDUP,
        "target_met": speedup >= TARGET_SPEEDUP,
    }
    print(f"ours_4ds vs baseline: {speedup:.2f}x", flush=True)
    config = {
        "quick": args.quick,
        "params_source": "fourds params ladder=4ds (experiments/), attention sdpa on this device",
        "shape": shape.describe(),
        "mae_ours": dataclasses.asdict(ours),
        "mae_baseline_and_ours_mae_st": dataclasses.asdict(mae_st),
        "visible_tokens": setups.visible_tokens(shape.tokens, ours.mask_ratio),
        "batch": batch,
        "precision": "fp32",
        "step": "zero_grad + forward + backward + AdamW step (no grad clipping)",
        "variants": variant_descriptions(mae_st),
        "warmup_rounds": warmup,
        "timed_rounds": repeats,
        "order": "interleaved: every round runs each variant once, in the order listed",
    }
    harness.write_result(NAME, args.out, device, config, results, started)


if __name__ == "__main__":
    main()
