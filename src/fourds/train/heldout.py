"""The held-out clips a pretraining run is measured on, and its MAE loss on them.

A pretrain stage evaluates its MAE on one fixed set of clips with fixed masks, the same for every
scale and seed of a study, before the first step, every `pretrain.heldout_every` steps and after
the last, so that the runs' curves can be laid side by side against steps or training FLOPs
(fourds.report). The clips are videos pretraining never trains on:

    source 'shards'   the first `pretrain.heldout_clips` clips of the curated readout-train split
                      (curate.clip_frames frames, every curate.frame_stride-th: other videos than
                      the pretrain split's, and none of the readouts' test clips);
    source 'world'    `pretrain.heldout_clips` clips of the world at `pretrain.world_complexity`,
                      with keys of their own domain (fourds.world.draws.HELDOUT), windows as the
                      run's clips.

The masks are drawn once from HELDOUT_MASK_SEED at the run's mask ratio and type. The loss is the
training loss's (fourds.models.mae), averaged over clips, evaluated without gradients and
without touching any random state the training reads, so a run's weights are the same with or
without the curve.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from fourds.config import PretrainSpec
from fourds.data.shards import load_split
from fourds.train.distributed import DistEnv
from fourds.train.world_clips import render_clips, world_clip_spec
from fourds.world.draws import HELDOUT, clip_keys

HELDOUT_MASK_SEED = 0x6D61736B
HELDOUT_SPLIT = "readout-train"

MaskSampler = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


@dataclasses.dataclass(frozen=True)
class HeldoutClips:
    """The held-out set: video uint8 [N, T, S, S, 3], keep_index int64 [N, n_keep] and mask
    bool [N, L] (L tokens per clip), on the model's device."""

    video: torch.Tensor
    keep_index: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return len(self.video)

    def part(self, env: DistEnv) -> HeldoutClips:
        """This rank's share: len // processes contiguous clips, the same number on every rank
        (so that a sharded model runs as many forwards on each); every clip on every rank when
        there are fewer clips than processes. The last len % processes clips are left out."""
        share = len(self) // env.world_size
        if share == 0:
            return self
        rows = slice(env.rank * share, (env.rank + 1) * share)
        return HeldoutClips(self.video[rows], self.keep_index[rows], self.mask[rows])


def heldout_video(spec: PretrainSpec, shard_dir: str | Path, device: torch.device) -> torch.Tensor:
    """The held-out clips uint8 [N, T, S, S, 3] on `device` (module docstring; world clips are
    rendered there), N at most pretrain.heldout_clips (fewer when the readout-train split holds
    fewer).

    Raises:
        FileNotFoundError: source 'shards' and the curated folder has no readout-train split.
        ShardError: one of its shards does not match its index.
    """
    cfg = spec.pretrain
    if cfg.source == "world":
        keys = clip_keys(0, 0, torch.arange(cfg.heldout_clips, device=device), HELDOUT)
        return render_clips(world_clip_spec(spec), keys)
    video = load_split(shard_dir, HELDOUT_SPLIT, ("video",))["video"][: cfg.heldout_clips]
    return torch.from_numpy(np.ascontiguousarray(video)).to(device)


def heldout_clips(
    spec: PretrainSpec, shard_dir: str | Path, sample_masks: MaskSampler, device: torch.device
) -> HeldoutClips | None:
    """The held-out set of `spec`'s run on `device`, with its fixed masks; None when
    pretrain.heldout_clips is 0, or when the pretrain shards are read from pretrain.shards_url
    and the stage's curated folder holds no readout-train split (one line says so)."""
    if not spec.pretrain.heldout_clips:
        return None
    try:
        video = heldout_video(spec, shard_dir, torch.device(device))
    except FileNotFoundError:
        if not spec.pretrain.shards_url:
            raise
        print(
            f"no held-out curve: {shard_dir} holds no {HELDOUT_SPLIT} split (the pretrain "
            f"shards are read from {spec.pretrain.shards_url}); pass the curated folder as "
            "--curated to measure one"
        )
        return None
    keep_index, mask = sample_masks(len(video), torch.Generator().manual_seed(HELDOUT_MASK_SEED))
    return HeldoutClips(video, keep_index.to(device), mask.to(device))


@torch.no_grad()
def heldout_loss(
    model: torch.nn.Module,
    clips: HeldoutClips,
    batch_size: int,
    autocast,
    env: DistEnv,
) -> float:
    """The MAE loss of `model` on the held-out `clips`, averaged over clips, every rank
    evaluating its share (`HeldoutClips.part`) in batches of `batch_size` under `autocast`.
    A sharded model runs its forward on every rank, so every rank calls this."""
    mine = clips.part(env)
    total = torch.zeros(2, dtype=torch.float64, device=clips.video.device)  # loss sum, clips
    for start in range(0, len(mine), batch_size):
        rows = slice(start, start + batch_size)
        with autocast:
            loss, _ = model(mine.video[rows], mine.keep_index[rows], mine.mask[rows])
        count = len(mine.video[rows])
        total[0] += loss.double() * count
        total[1] += count
    if env.sharded:
        dist.all_reduce(total)
    return (total[0] / total[1]).item()
