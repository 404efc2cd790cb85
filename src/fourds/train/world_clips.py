"""Pretraining on fresh clips of the procedural world, rendered on the model's device.

With `pretrain.source: world` no clip is read from shards: each step's clips are drawn and
rendered where the model trains (fourds.world.batch, fourds.world.batch_render), so every clip
of a run is new and a GPU is fed at its own rate. As with the shard loader
(fourds.train.loader), every random choice is a pure function of (seed, step, row):

- the scene of row r of step s is that of clip key `clip_keys(seed, s, r)`, drawn from the
  world's level `pretrain.world_complexity` (fourds.config.world_levels), the same on any device
  and in any number of processes (each renders only its rows);
- the clip's window starts at a frame drawn from the same key, in a video of
  `curate.pretrain_frames` frames at the corpus's frame rate, and takes every
  `pretrain.frame_stride`-th frame, `curate.clip_frames` in all;
- the masks come from `sample_masks` with a generator seeded by (seed, step, first row).

The state is just the next step, so a resumed run renders the very batches it would have seen.
Crops and flips are off (`pretrain.crop_scale` must be [1, 1]: a fresh clip needs no
augmentation), so each clip's view is the whole frame. On a GPU the clips of several steps
(RENDER_CLIPS) are drawn and rendered together: the same clips as step by step, with a drawing's
and a pass's kernel launches shared (an eager render of 128 clips is bound by its launches there).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from fourds.config import PretrainSpec
from fourds.config.world_levels import STANDARD, world_level
from fourds.world.batch import sample_scenes
from fourds.world.batch_render import render_batch
from fourds.world.draws import Draws, clip_keys
from fourds.world.scene import FRAME_RATE

# Clips drawn and rendered at once, by device: whole steps' batches, at least one (a CPU renders
# at its arithmetic's rate, a step at a time).
RENDER_CLIPS = {"cpu": 0, "cuda": 1024}

MaskSampler = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


@dataclasses.dataclass(frozen=True)
class WorldClipSpec:
    """The clips a run renders: `frames` frames of size x size, every `stride`-th frame of a
    `video_frames`-frame video at FRAME_RATE, from a window start drawn uniformly; each pixel's
    colour averages supersample x supersample rays; scenes drawn from the world's level named
    `complexity` (fourds.config.world_levels)."""

    frames: int
    stride: int
    video_frames: int
    size: int
    supersample: int
    complexity: str = STANDARD

    @property
    def span(self) -> int:
        return (self.frames - 1) * self.stride + 1


def world_clip_spec(spec: PretrainSpec) -> WorldClipSpec:
    """The clips a run of `spec` renders (pretrain.source 'world'): its curate params' frames,
    size and video length, its pretrain params' stride, supersampling and world level."""
    cfg, curate = spec.pretrain, spec.curate
    return WorldClipSpec(
        curate.clip_frames,
        cfg.frame_stride,
        curate.pretrain_frames,
        curate.resolution,
        cfg.world_supersample,
        cfg.world_complexity,
    )


def clip_times(spec: WorldClipSpec, keys: torch.Tensor) -> torch.Tensor:
    """Frame times [B, frames] in seconds of the clips with keys [B, 2]: a window start drawn
    from a stream of the key's draws kept apart from the scene's."""
    draws = Draws(keys ^ 0x5EED)
    start = draws.integers(spec.video_frames - spec.span + 1)  # [B]
    offsets = torch.arange(spec.frames, device=keys.device) * spec.stride
    return (start[:, None] + offsets).to(torch.float32) / FRAME_RATE


def render_clips(spec: WorldClipSpec, keys: torch.Tensor, compiled: bool = False) -> torch.Tensor:
    """The clips uint8 [B, frames, size, size, 3] of the keys [B, 2], rendered on the keys'
    device (`compiled`: with the compiled pass of fourds.world.batch_render)."""
    scenes = sample_scenes(keys, level=world_level(spec.complexity))
    rendered = render_batch(
        scenes,
        clip_times(spec, keys),
        spec.size,
        supersample=spec.supersample,
        truth=False,
        compiled=compiled,
    )
    return rendered.video


class WorldClips:
    """One batch per step of this process's `rows`, rendered on `device`; iterate from the
    step the state says (`load_state_dict`). Batches hold "video" uint8 [B, T, S, S, 3],
    "view" int64 [B, 5] (the whole frame, no flip), "keep_index" [B, n_keep], "mask" [B, N],
    all on `device`: what `fourds.train.step.step_on_batch` takes. `compiled`: render with the
    compiled pass (fourds.world.batch_render; the stage compiles it on a GPU)."""

    def __init__(
        self,
        spec: WorldClipSpec,
        seed: int,
        steps: int,
        rows: range,
        sample_masks: MaskSampler,
        device: torch.device,
        compiled: bool = False,
    ):
        self.spec, self.seed, self.steps, self.rows = spec, seed, steps, rows
        self.sample_masks, self.device = sample_masks, torch.device(device)
        self.compiled = compiled
        self.step = 0

    def batches(self, first: int, count: int) -> list[dict[str, torch.Tensor]]:
        """The batches of steps first, ..., first + count - 1, drawn and rendered together: each
        a pure function of (seed, step, rows), as `batch` gives it alone."""
        rows = torch.arange(self.rows.start, self.rows.stop, device=self.device)
        keys = torch.cat([clip_keys(self.seed, step, rows) for step in range(first, first + count)])
        videos = render_clips(self.spec, keys, self.compiled).split(len(rows))
        return [self._batch(first + index, video) for index, video in enumerate(videos)]

    def _batch(self, step: int, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """Step `step`'s batch of the rendered `video` [B, T, S, S, 3]: its masks and views."""
        seed = np.random.SeedSequence([self.seed, step, self.rows.start]).generate_state(1)
        keep_index, mask = self.sample_masks(
            len(video), torch.Generator().manual_seed(int(seed[0]))
        )
        size = self.spec.size
        return {
            "video": video,
            "view": torch.tensor([0, 0, size, size, 0], device=self.device).expand(len(video), 5),
            "keep_index": keep_index.to(self.device),
            "mask": mask.to(self.device),
        }

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """The batch of `step` (a pure function of seed, step and rows)."""
        return self.batches(step, 1)[0]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        ahead = max(1, RENDER_CLIPS.get(self.device.type, 0) // len(self.rows))
        while self.step < self.steps:
            for batch in self.batches(self.step, min(ahead, self.steps - self.step)):
                self.step += 1
                yield batch

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
