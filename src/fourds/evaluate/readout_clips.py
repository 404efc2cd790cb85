"""A readout's clips: a task's train and test splits from its source (the curated shards or a
benchmark), checked to be the encoder's shape, the train split extended by clips cut from the
pretraining segments where readouts.<task>.pretrain_clips asks; and the task read on them."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import numpy as np
import torch

from fourds.config import ConfigError, ReadoutSpec, TaskReadoutConfig
from fourds.config.formats import FORMATS, SYNTHETIC
from fourds.config.tasks import TASKS
from fourds.data.benchmarks import load_readout_split, pretrain_clips, readout_classes
from fourds.data.spill import HostBudget
from fourds.evaluate.readout import Features, clip_geometry, test_features
from fourds.evaluate.tasks import ClipGeometry, Task, TaskContext, make_task
from fourds.models.readout import readout_block_count
from fourds.models.vit import VideoViT


def check_clip_shape(video: np.ndarray, geometry: ClipGeometry, source: str, split: str) -> None:
    """The clips [N, T, H, W, 3] of a split are the encoder's own shape.

    Raises:
        ConfigError: they are not (curated shards of another ladder than the encoder's).
    """
    shape, expected = tuple(video.shape[1:4]), (geometry.frames, geometry.size, geometry.size)
    if shape != expected:
        raise ConfigError(
            f"the {split} clips of {source} are {'x'.join(map(str, shape))} (frames x height x "
            f"width), the encoder reads {'x'.join(map(str, expected))}: curate at its shape "
            "(curate.clip_frames, curate.resolution) or name a benchmark in the source"
        )


@dataclasses.dataclass(frozen=True)
class ReadoutClips:
    """A task's readout clips at the encoder's input: train and test {key: [N, ...]} ("video"
    [N, T, H, W, 3] uint8 and the task's keys), the train split extended by `extra` clips cut
    from the pretraining segments (readouts.<task>.pretrain_clips), and the block the
    readout reads (`num_blocks` of the encoder)."""

    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    extra: int
    geometry: ClipGeometry
    num_blocks: int

    @classmethod
    def load(
        cls, spec: ReadoutSpec, encoder: VideoViT, shard_dir: str | Path, budget: HostBudget
    ) -> ReadoutClips:
        """Read the splits of the readout `spec`'s source (readouts.<task>.source), checked to
        have the encoder's shape.

        Raises:
            ConfigError: a split's clips are not the encoder's shape (`check_clip_shape`), or
                the curated clips lack a key the task reads (its table entry's `needs` says
                what data carries it).
        """
        task_name, task_cfg = spec.task, spec.own
        source, geometry = task_cfg.source, clip_geometry(encoder)
        num_blocks = readout_block_count(
            encoder.cfg.depth, spec.shared.readout_depth, encoder.convention
        )
        keys = ("video", *TASKS[task_name].keys)
        try:
            splits = {
                name: load_readout_split(
                    source, name, shard_dir, keys, geometry.frames, geometry.size, budget
                )
                for name in ("train", "test")
            }
        except KeyError as missing:
            if source.format != SYNTHETIC:
                raise
            needs = TASKS[task_name].needs
            raise ConfigError(
                f"the {task_name} readout reads {missing} ground truth, which the clips of "
                f"readouts.{task_name}.source do not carry"
                + (f": it needs {needs}" if needs else "")
            ) from None
        for name, clips in splits.items():
            check_clip_shape(clips["video"], geometry, f"readouts.{task_name}.source", name)
        train, extra = splits["train"], 0
        if task_cfg.pretrain_clips and source.format == "synthetic" and not task_cfg.pretrained:
            more = pretrain_clips(
                shard_dir, keys, task_cfg.pretrain_clips, geometry.frames,
                spec.pretraining.curate.frame_stride,
            )  # fmt: skip
            check_clip_shape(more["video"], geometry, shard_dir, "pretrain")
            train = {key: np.concatenate([train[key], more[key]]) for key in keys}
            extra = len(more["video"])
        return cls(train, splits["test"], extra, geometry, num_blocks)

    def test_features(
        self, encoder: VideoViT, device: torch.device, batch_size: int, budget: HostBudget
    ) -> Features:
        """The test clips' features as the encoder is now."""
        return test_features(encoder, self.test, self.num_blocks, device, batch_size, budget)


def readout_task(task_name: str, own: TaskReadoutConfig, clips: ReadoutClips) -> Task:
    """The task `task_name` a readout is trained on, with its options (`own`:
    readouts.<task>), for the clips and classes of its source; where the source's format has a
    challenge scoring (fourds.config.formats), scored also as the challenge scores it."""
    source = own.source
    context = TaskContext(own.options, (clips.train, clips.test), readout_classes(source))
    task = make_task(task_name, clips.geometry, context)
    entry = FORMATS.get(source.format)
    if entry is None or not entry.challenge:
        return task
    return importlib.import_module(entry.challenge).challenge_task(task, source)
