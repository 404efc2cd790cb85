"""Learning speed: fourds' MAE against the MAE-ST recipe at equal budget on the embedded corpus.

Trains two masked autoencoders of the `cpu_s` shape (width 96, depth 4, 3 heads, MLP 384,
tubelet 2x8x8 on 8x64x64 clips; MAE-ST decoder 128 wide, 2 deep, 4 heads; 90% masking) on the
curated pretrain split, taking turns step by step, once per seed (pretrain.seed: the initial
weights and every batch; seeds 0, 1 and 2 by default, each in its own process on one torch
thread):

- `fourds`: fourds.models.factory.scale_mae with fourds' initialisation and
  fourds.train.optim.adamw_param_groups;
- `mae_st_recipe`: mae_st_recipe.MAESTRecipe (separable space/time positional embeddings, class
  token, final encoder LayerNorm, the recipe's initialisation) with recipe_param_groups.

Both get exactly the same budget: the same batches (step k: the clips and masks fourds' loader
makes for step k, from ClipExample with pretrain.seed), pretrain.batch_size clips per step,
AdamW with betas (0.9, 0.95) at the pinned pretrain.lr for every parameter (no width rule:
pretrain.lr_reference_width and lr_scaling are not applied) and weight_decay, linear warm-up over
pretrain.warmup_steps then cosine decay to zero (fourds.train.pretrain.learning_rate), gradient
norm clipped at pretrain.grad_clip, fp32, weights drawn after torch.manual_seed(pretrain.seed).
Both score the mean squared error of the masked tubelets' raw pixels.

Records each variant's per-step loss curve and final loss (the mean of the last 100 steps), the
same for a no-learning baseline that predicts every masked pixel as its clip's mean visible
colour, and the seconds each variant's steps took, per seed. Target: fourds' final loss,
averaged over the seeds, <= the recipe's (one seed's final losses move by about 1%). The recipe
is trained at fourds' pinned schedule, not at its own lr rule (blr * batch / 256, 1e-4 at blr
1.6e-3 and batch 16), so that only the model, initialisation and parameter groups differ.

Run: python benchmarks/mae_recipe.py [--quick] [--shards DIR] [--steps N] [--seeds S ...]
(the shards: `dvc repro curate` writes runs/curate/shards)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import harness
import numpy as np
import setups
import torch
from mae_st_recipe import MAESTRecipe, recipe_param_groups

from fourds.config import Params
from fourds.data.augment import ClipSampler, crop_resize_flip
from fourds.data.segments import SegmentStore
from fourds.data.shards import shard_digests, shard_paths
from fourds.models.factory import scale_mae
from fourds.models.mae import patchify
from fourds.train.loader import ClipExample, Slot, collate
from fourds.train.optim import adamw_param_groups
from fourds.train.pretrain import learning_rate

NAME = "mae_recipe"
SCALE = "cpu_s"
TAIL = 100  # the final loss is the mean over the last TAIL steps
BETAS = (0.9, 0.95)
DEFAULT_SHARDS = harness.REPO / "runs" / "curate" / "shards"
# --quick: setups.TINY's encoder on 4-frame clips at the shards' resolution, tiny decoder; after
# 120 steps both variants' final losses are 6-11% under the mean-colour baseline's (seeds 0-5).
QUICK_STEPS, QUICK_WARMUP, QUICK_BATCH, QUICK_TAIL = 120, 20, 8, 40
SEEDS = (0, 1, 2)  # one seed's final losses differ by about 1% from another's
WORKERS = 2  # seeds trained at once, one process and one torch thread each


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This benchmark's options: the shard folder, the number of steps and the seeds."""
    parser.add_argument(
        "--shards",
        type=Path,
        default=DEFAULT_SHARDS,
        help="curated shard folder with the pretrain split (default: runs/curate/shards)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"training steps per variant (default: pretrain.steps; --quick: {QUICK_STEPS})",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help=f"pretrain.seed of each run (default: {' '.join(map(str, SEEDS))}; --quick: 0)",
    )


def load_segments(shard_dir: Path) -> SegmentStore:
    """The curated pretraining segments (uint8 [F, S, S, 3] each), memory-mapped as the
    pretrain stage reads them."""
    if not shard_paths(shard_dir, "pretrain"):
        raise SystemExit(
            f"no pretrain shards in {shard_dir}: run `dvc repro curate` first "
            "(or pass --shards DIR)"
        )
    return SegmentStore.open(shard_dir, "pretrain")


def benchmark_params(quick: bool, steps: int | None, size: int) -> tuple[Params, str, int]:
    """(params, scale, tail): the embedded ladder's params as `fourds params` composes them,
    with pretrain.steps set to `steps`; with `quick`, the tiny stand-ins on clips of `size`."""
    params = setups.compose_ladder()
    if not quick:
        pretrain = dataclasses.replace(params.pretrain, steps=steps or params.pretrain.steps)
        return dataclasses.replace(params, pretrain=pretrain), SCALE, TAIL
    tiny = setups.TINY
    params = dataclasses.replace(
        params,
        models={**params.models, tiny.name: tiny.model},
        curate=dataclasses.replace(params.curate, clip_frames=tiny.frames, resolution=size),
        mae=setups.tiny_mae(params.mae),
        pretrain=dataclasses.replace(
            params.pretrain,
            steps=steps or QUICK_STEPS,
            warmup_steps=QUICK_WARMUP,
            batch_size=QUICK_BATCH,
        ),
    )
    return params, tiny.name, QUICK_TAIL


@dataclasses.dataclass(frozen=True)
class Batches:
    """The batch of every step, as fourds' pretraining loader makes it (a pure function of
    (pretrain.seed, step, row)), so every variant sees the same clips and masks at step k."""

    example: ClipExample
    batch_size: int

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> video float [B, T, S, S, 3] in [0, 1], keep_index [B, n_keep], mask bool [B, N]."""
        batch = collate([self.example(Slot(step, row)) for row in range(self.batch_size)])
        video = crop_resize_flip(batch["video"], batch["view"])
        return video.float().div_(255.0), batch["keep_index"], batch["mask"]


def make_batches(params: Params, scale: str, segments: SegmentStore) -> Batches:
    """The pretrain stage's clip sampling and masking for `scale`, on `segments`."""
    cfg = params.pretrain
    sampler = ClipSampler(
        params.curate.clip_frames, cfg.frame_stride, cfg.crop_scale, cfg.crop_aspect
    )
    frames, size, _, _ = segments[0].shape
    if frames < sampler.span or size != params.curate.resolution:
        raise SystemExit(
            f"the pretrain segments are {frames}x{size}x{size}; this benchmark needs at least "
            f"{sampler.span} frames at {params.curate.resolution}x{params.curate.resolution}: "
            "curate again with the committed params (`dvc repro curate`)"
        )
    with torch.device("meta"):  # only for its mask sampler (masks are drawn on the CPU)
        masker = scale_mae(params.pretraining(scale))
    return Batches(ClipExample(segments, sampler, cfg.seed, masker.sample_masks), cfg.batch_size)


def mean_colour_loss(
    video: torch.Tensor, mask: torch.Tensor, tubelet: tuple[int, int, int]
) -> torch.Tensor:
    """The models' loss for predicting every masked pixel as its clip's mean visible colour.

    Args:
        video: [B, T, H, W, 3]; mask: [B, N] bool, True where the tubelet is masked.

    Returns:
        scalar: mean squared error over the masked tubelets' pixels.
    """
    batch, tokens = mask.shape
    pixels = patchify(video, tubelet).reshape(batch, tokens, -1, 3)  # [B, N, t*p*q, 3]
    visible = (~mask).float()[..., None, None]  # [B, N, 1, 1]
    colour = (pixels * visible).sum(dim=(1, 2)) / (visible.sum(dim=(1, 2)) * pixels.shape[2])
    per_token = ((pixels - colour[:, None, None]) ** 2).mean(dim=(2, 3))  # [B, N]
    weights = mask.float()
    return (per_token * weights).sum() / weights.sum()


def build_fourds(params: Params, scale: str) -> tuple[torch.nn.Module, list[dict]]:
    """fourds' MAE of `scale` as the pretrain stage builds it, and its AdamW groups."""
    torch.manual_seed(params.pretrain.seed)
    model = scale_mae(params.pretraining(scale)).train()
    return model, adamw_param_groups(model, params.pretrain.weight_decay)


def build_recipe(params: Params, scale: str) -> tuple[torch.nn.Module, list[dict]]:
    """The MAE-ST recipe's model at the same sizes as `build_fourds`, and its AdamW groups."""
    model_cfg, mae = params.model(scale), params.mae
    torch.manual_seed(params.pretrain.seed)
    model = MAESTRecipe(
        params.curate.clip_frames,
        params.curate.resolution,
        model_cfg.tubelet,
        model_cfg.width,
        model_cfg.depth,
        model_cfg.heads,
        model_cfg.mlp_dim,
        model_cfg.bias,
        mae.decoder_width,
        mae.decoder_depth,
        mae.decoder_heads,
    ).train()
    return model, recipe_param_groups(model, params.pretrain.weight_decay)


Builder = Callable[[Params, str], tuple[torch.nn.Module, list[dict]]]
VARIANTS: dict[str, Builder] = {"fourds": build_fourds, "mae_st_recipe": build_recipe}


def final_loss(curve: list[float], tail: int) -> float:
    """Mean of the last `tail` steps' losses."""
    return round(float(np.mean(curve[-tail:])), 6)


@dataclasses.dataclass
class Run:
    """One variant in training: its model and optimizer, its loss at every step so far and
    the seconds its steps took."""

    name: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    curve: list[float] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @classmethod
    def start(cls, name: str, build: Builder, params: Params, scale: str) -> Run:
        """A fresh `build(params, scale)` with AdamW over its groups (the lr is set per step)."""
        model, groups = build(params, scale)
        return cls(name, model, torch.optim.AdamW(groups, lr=params.pretrain.lr, betas=BETAS))

    def step(
        self,
        video: torch.Tensor,
        keep_index: torch.Tensor,
        mask: torch.Tensor,
        lr: float,
        grad_clip: float,
    ) -> None:
        """One step on video [B, T, S, S, 3], keep_index [B, n_keep], mask bool [B, N]:
        forward (masked-tubelet MSE), backward, gradient norm clipped at `grad_clip`, AdamW at
        `lr`.

        Raises:
            FloatingPointError: the loss is not finite.
        """
        started = time.perf_counter()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss, _ = self.model(video, keep_index, mask)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), grad_clip)
        self.optimizer.step()
        self.seconds += time.perf_counter() - started
        self.curve.append(loss.item())
        if not math.isfinite(self.curve[-1]):
            raise FloatingPointError(f"{self.name}: the loss became {self.curve[-1]}")

    def record(self, tail: int) -> dict:
        """JSON-ready: the final loss, the loss curve, parameters and seconds of training."""
        return {
            "final_loss": final_loss(self.curve, tail),
            "loss_curve": self.curve,
            "parameters": sum(param.numel() for param in self.model.parameters()),
            "train_s": round(self.seconds, 1),
        }


def train_side_by_side(
    runs: list[Run], batches: Batches, params: Params, scale: str
) -> tuple[list[float], float]:
    """Train every run for pretrain.steps steps, step k of each on batch k.

    The runs take turns step by step, so one batch serves them all; the order changes no
    result (each run has its own model and optimizer and draws no random numbers).

    Returns:
        (the mean-colour baseline's loss on every step's batch, seconds spent making batches).
    """
    cfg, tubelet = params.pretrain, params.model(scale).tubelet
    peak_lr = cfg.lr  # one rate for both, without the width rule: only the models differ
    baseline, batch_seconds = [], 0.0
    for step in range(cfg.steps):
        started = time.perf_counter()
        video, keep_index, mask = batches(step)
        batch_seconds += time.perf_counter() - started
        baseline.append(mean_colour_loss(video, mask, tubelet).item())
        for run in runs:
            run.step(video, keep_index, mask, learning_rate(step, cfg, peak_lr), cfg.grad_clip)
        if (step + 1) % 100 == 0:
            losses = ", ".join(f"{run.name} {run.curve[-1]:.5f}" for run in runs)
            print(f"step {step + 1}/{cfg.steps}: {losses}", flush=True)
    return baseline, batch_seconds


def train_seed(shards: Path, quick: bool, steps: int | None, seed: int) -> dict:
    """Both variants and the baseline trained side by side with pretrain.seed = `seed` (the
    initial weights and every batch), in this process on one torch thread.

    Returns:
        JSON-ready: per variant its record (`Run.record`), the mean-colour baseline's final loss
        and curve, and the seconds spent making batches.
    """
    torch.set_num_threads(1)
    segments = load_segments(shards)
    params, scale, tail = benchmark_params(quick, steps, segments[0].shape[1])
    params = dataclasses.replace(params, pretrain=dataclasses.replace(params.pretrain, seed=seed))
    batches = make_batches(params, scale, segments)
    runs = [Run.start(name, build, params, scale) for name, build in VARIANTS.items()]
    baseline, batch_seconds = train_side_by_side(runs, batches, params, scale)
    return {
        "variants": {run.name: run.record(tail) for run in runs},
        "mean_colour_baseline": {"final_loss": final_loss(baseline, tail), "loss_curve": baseline},
        "batch_s": round(batch_seconds, 1),
    }


def train_seeds(shards: Path, quick: bool, steps: int | None, seeds: list[int]) -> dict:
    """`train_seed` for every seed, each in its own spawned process, WORKERS at a time."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(WORKERS, len(seeds)), mp_context=context) as pool:
        futures = {seed: pool.submit(train_seed, shards, quick, steps, seed) for seed in seeds}
        return {str(seed): future.result() for seed, future in futures.items()}


def main() -> None:
    started = time.perf_counter()
    args = harness.parse_args(__doc__.splitlines()[0], add_arguments)
    seeds = args.seeds or ([0] if args.quick else list(SEEDS))
    segments = load_segments(args.shards)  # fails early, with the fix, when there are none
    params, scale, tail = benchmark_params(args.quick, args.steps, segments[0].shape[1])
    runs = train_seeds(args.shards, args.quick, args.steps, seeds)

    def mean_final(variant: str) -> float:
        return round(
            float(np.mean([run["variants"][variant]["final_loss"] for run in runs.values()])), 6
        )

    ours, recipe = mean_final("fourds"), mean_final("mae_st_recipe")
    results = {
        "seeds": runs,
        "fourds_over_recipe": {
            seed: round(
                run["variants"]["fourds"]["final_loss"]
                / run["variants"]["mae_st_recipe"]["final_loss"],
                4,
            )
            for seed, run in runs.items()
        },
        "mean_final_loss": {"fourds": ours, "mae_st_recipe": recipe},
        "target_met": ours <= recipe,
    }
    for seed, ratio in results["fourds_over_recipe"].items():
        print(f"seed {seed}: fourds / MAE-ST recipe final loss {ratio:.3f}", flush=True)
    print(
        f"mean final loss over seeds {seeds} (mean of the last {tail} steps each): fourds "
        f"{ours}, MAE-ST recipe {recipe} (ratio {ours / recipe:.3f})",
        flush=True,
    )
    config = {
        "quick": args.quick,
        "scale": scale,
        "seeds": seeds,
        "shape": setups.ladder_shape(params, scale).describe(),
        "mae": dataclasses.asdict(params.mae),
        "pretrain": dataclasses.asdict(params.pretrain),
        "betas": BETAS,
        "variants": {name: build.__doc__ for name, build in VARIANTS.items()},
        "final_loss": f"mean of the last {tail} steps",
        "target": "mean over seeds of fourds final_loss <= that of mae_st_recipe",
        "shards": {
            "folder": str(args.shards),
            "segments": [len(segments), *segments[0].shape],
            "sha256": list(shard_digests(shard_paths(args.shards, "pretrain")).values()),
        },
        "order": (
            f"each seed in its own process on one torch thread, {WORKERS} processes at a time; "
            "within a seed the variants take turns step by step"
        ),
    }
    harness.write_result(NAME, args.out, torch.device("cpu"), config, results, started)


if __name__ == "__main__":
    main()
