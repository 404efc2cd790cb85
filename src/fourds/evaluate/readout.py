"""Attention readouts on top of a pretrained encoder: features, training, scoring.

Regimes (one stage each, from readout.regimes): "frozen" trains only the readout; "finetuned"
trains the encoder too (at readout.finetune_lr_scale times the readout's learning rate);
"initial" and "random_init" train only the readout, on a control's encoder (fourds.config.regimes).
With a frozen encoder and readout.cache_features the encoder runs once per clip and the readout
trains on the stored features, kept in host memory up to readout.max_host_mib and memory-mapped
from the stage's scratch folder beyond it (fourds.data.spill); without it the encoder runs on
every batch (same numbers, slower: see benchmarks/readout_caching.py). The readout trains on
readout-train and is scored on readout-test.

Precision: a frozen encoder holds its weights in `readout.precision` (fourds.evaluate.precision;
bf16 fits 4DS-j on one 80 GB GPU), and its features are cached in that dtype; the readout reads
them as fp32 and trains in fp32. A fine-tuned encoder stays fp32.

Data: `readouts.<task>.source` picks the curated synthetic corpus or a public benchmark format
(fourds.data.benchmarks), cut into clips of the encoder's input size. `readouts.depth.pretrained`
scores a readout converted from an official 4DS checkpoint (`fourds convert`) without training.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import gin
import numpy as np
import torch
from tqdm import tqdm

from fourds.config import ReadoutSpec
from fourds.config.operative import configured
from fourds.config.regimes import REGIMES
from fourds.data.spill import IN_MEMORY, HostBudget, mapped
from fourds.evaluate.metrics import DepthProtocol
from fourds.evaluate.tasks import ClipGeometry, Task
from fourds.evaluate.tasks.base import Evaluation, select
from fourds.evaluate.tasks.depth import DepthTask
from fourds.models.convert import load_readout
from fourds.models.pose_readout import CorrelationPoseReadout
from fourds.models.readout import AttentionReadout
from fourds.models.tracking_readout import AFFINE_OUTPUTS, MotionTrackingReadout
from fourds.models.vit import VideoViT
from fourds.models.weights import WeightsError


def encode_clips(encoder: VideoViT, video: torch.Tensor, num_blocks: int) -> torch.Tensor:
    """uint8 clips [B, T, H, W, 3] on the encoder's device -> the features of its first
    `num_blocks` blocks [B, T'*h*w, D], in the encoder's dtype."""
    return encoder(video.float().div_(255.0), num_blocks=num_blocks)


# Integer dtypes of each item size: the bytes of features of any dtype (bf16 too) in numpy.
RAW_DTYPES = {1: (torch.uint8, np.uint8), 2: (torch.int16, np.int16), 4: (torch.int32, np.int32)}
RAW_DTYPES[8] = (torch.int64, np.int64)


class MappedFeatures:
    """Cached features [N, L, D] written batch by batch to a file of the scratch folder, then
    read memory-mapped: [index] ([b]) -> [b, L, D] in their dtype, as a tensor's indexing."""

    def __init__(self, budget: HostBudget, count: int, dtype: torch.dtype, shape: torch.Size):
        self.count, self.dtype, self.shape = count, dtype, (count, *shape)
        self.path = budget.new_file("features")
        self.file = open(self.path, "wb")  # noqa: SIM115 (closed by finish)
        self.array: np.ndarray | None = None

    def write(self, batch: torch.Tensor) -> None:
        """Append the next clips' features [b, L, D]."""
        raw = batch.contiguous().view(RAW_DTYPES[batch.element_size()][0])
        self.file.write(raw.numpy().tobytes())

    def finish(self) -> MappedFeatures:
        """Close the file and map it (every clip written)."""
        self.file.close()
        raw = RAW_DTYPES[torch.empty((), dtype=self.dtype).element_size()][1]
        self.array = mapped(self.path, np.dtype(raw), self.shape)
        return self

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.array[index.numpy()]).view(self.dtype)

    def first(self, count: int) -> MappedFeatures:
        """The first `count` clips' features, read from the same file."""
        first = copy.copy(self)
        first.count, first.shape, first.array = count, (count, *self.shape[1:]), self.array[:count]
        return first

    def __len__(self) -> int:
        return self.count


def cache_features(
    encode: Callable[[torch.Tensor], torch.Tensor], count: int, batch_size: int, budget: HostBudget
) -> torch.Tensor | MappedFeatures:
    """The features `encode` gives clips 0..count-1 ([b] -> [b, L, D]), computed batch by batch:
    [count, L, D] in host memory, or MappedFeatures where they would take more than `budget`."""
    batches, spilled = [], None
    for start in range(0, count, batch_size):
        batch = encode(torch.arange(start, min(start + batch_size, count), device="cpu")).cpu()
        if start == 0 and budget.spills(count * batch[0].nbytes):
            spilled = MappedFeatures(budget, count, batch.dtype, batch.shape[1:])
        if spilled is None:
            batches.append(batch)
        else:
            spilled.write(batch)
    return torch.cat(batches) if spilled is None else spilled.finish()


class Features:
    """Encoder features of a split's clips by index: [b] -> [b, T'*h*w, D] fp32 on `device`.

    Cached: computed once (no gradient), batch by batch, and kept in the encoder's dtype in host
    memory, or memory-mapped from a file of `budget`'s folder past its bytes (the device holds
    one batch at a time). Otherwise the encoder runs on each batch, with gradients when it is
    being fine-tuned.
    """

    def __init__(
        self,
        encoder: VideoViT,
        videos: np.ndarray,
        num_blocks: int,
        device: torch.device,
        cache: bool,
        batch_size: int,
        budget: HostBudget = IN_MEMORY,
    ):
        self.encoder, self.videos, self.num_blocks, self.device = (
            encoder,
            videos,
            num_blocks,
            device,
        )
        self.cached = None
        if cache:
            with torch.no_grad():
                self.cached = cache_features(self.encode, len(videos), batch_size, budget)

    def encode(self, index: torch.Tensor) -> torch.Tensor:
        """The features of clips `index` [b], computed now, in the encoder's dtype."""
        video = torch.from_numpy(self.videos[index.numpy()]).to(self.device)
        return encode_clips(self.encoder, video, self.num_blocks)

    def __call__(self, index: torch.Tensor) -> torch.Tensor:
        features = self.encode(index) if self.cached is None else self.cached[index]
        return features.to(self.device, torch.float32)

    def first(self, count: int) -> Features:
        """These features of the first `count` clips only (cached: the same stored ones)."""
        first = copy.copy(self)
        first.videos = self.videos[:count]
        if self.cached is not None:
            first.cached = self.cached.first(count) if isinstance(
                self.cached, MappedFeatures) else self.cached[:count]  # fmt: skip
        return first


@gin.configurable("readout_optimizer")
def readout_optimizer(
    readout: AttentionReadout,
    encoder: VideoViT,
    regime: str,
    lr: float,
    weight_decay: float,
    finetune_lr_scale: float,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.AdamW:
    """AdamW over the readout at `lr` (readouts.<task>.lr), and over the encoder when `regime`
    trains it (fourds.config.regimes; at `finetune_lr_scale` times `lr`)."""
    groups = [{"params": readout.parameters(), "lr": lr}]
    if REGIMES[regime].trains_encoder:
        groups.append({"params": encoder.parameters(), "lr": lr * finetune_lr_scale})
    return torch.optim.AdamW(groups, betas=betas, weight_decay=weight_decay)


def readout_step(
    readout: AttentionReadout,
    optimizer: torch.optim.Optimizer,
    features: torch.Tensor,
    batch: dict[str, torch.Tensor],
    loss: Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor],
) -> torch.Tensor:
    """One training step on features [B, T'*h*w, D] fp32 and the batch's targets (with
    "queries" [B, Q, query_dim] for tasks with given queries); `loss(outputs, batch)` (a task's
    `loss`) maps the outputs [B, Q, out_dim] to a scalar. Returns the loss."""
    value = loss(readout(features, batch.get("queries")), batch)
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    optimizer.step()
    return value


def training_optimizer(
    readout: AttentionReadout, encoder: VideoViT, spec: ReadoutSpec
) -> torch.optim.AdamW:
    """`readout_optimizer` at readouts.<task>'s lr and weight decay (and over the encoder where
    the regime trains it), built through gin so that a stage's operative.gin records it."""
    settings = {
        "lr": spec.own.lr,
        "weight_decay": spec.own.weight_decay,
        "finetune_lr_scale": spec.shared.finetune_lr_scale,
    }
    return configured(readout_optimizer, settings, readout, encoder, spec.regime)


def train_readout(
    readout: AttentionReadout,
    optimizer: torch.optim.Optimizer,
    task: Task,
    features: Features,
    targets: dict[str, torch.Tensor],
    spec: ReadoutSpec,
    device: torch.device,
    seed: int,
) -> list[float]:
    """`optimizer` (`training_optimizer`) with cosine decay over readouts.<task>.steps on the
    train clips' `features` and `targets`, batches drawn with replacement from a generator
    seeded with `seed`. Returns the loss per step."""
    cfg = spec.own
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.steps)
    generator = torch.Generator().manual_seed(seed)
    count = len(next(iter(targets.values())))
    losses = []
    label = f"readout {spec.name} seed {seed}"
    for _ in (bar := tqdm(range(cfg.steps), desc=label, unit="step")):
        index = torch.randint(count, (cfg.batch_size,), generator=generator, device="cpu")
        batch = task.with_queries(select(targets, index), generator)
        batch = {key: value.to(device) for key, value in batch.items()}
        loss = readout_step(readout, optimizer, features(index), batch, task.loss)
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return losses


def clip_geometry(encoder: VideoViT) -> ClipGeometry:
    """The clips the encoder reads: its tubelet and token grid, frames and square size."""
    return ClipGeometry(encoder.cfg.tubelet, encoder.grid, encoder.frames, encoder.size)


def converted_readout(
    path: str | Path, geometry: ClipGeometry, protocol: DepthProtocol, backend: str
) -> tuple[AttentionReadout, Task]:
    """A readout written by `fourds convert` and the depth task that reads its outputs.

    Raises:
        WeightsError: the readout predicts more than one channel, or was converted for clips of
            another size than the encoder's.
    """
    loaded = load_readout(path, backend)
    if loaded.layout.channels != 1:
        raise WeightsError(
            f"{path}: a depth readout predicts one channel per pixel, this one "
            f"{loaded.layout.channels}"
        )
    task = DepthTask(geometry, protocol, loaded.layout.patch, loaded.depth_output)
    readout = loaded.module
    queries = readout.queries.shape[1]
    expected = (task.num_queries, geometry.frames, geometry.grid)
    if (queries, readout.frames, tuple(readout.grid)) != expected:
        raise WeightsError(
            f"{path}: a readout of {queries} queries over {readout.frames} frames and token "
            f"grid {tuple(readout.grid)} does not fit this encoder's "
            f"{geometry.frames}x{geometry.size}x{geometry.size} clips (token grid "
            f"{geometry.grid}, {task.num_queries} patches of {'x'.join(map(str, task.patch))})"
        )
    return readout, task


def build_readout(
    encoder: VideoViT,
    task: Task,
    spec: ReadoutSpec,
    start: dict[str, torch.Tensor] | None = None,
) -> AttentionReadout | CorrelationPoseReadout | MotionTrackingReadout:
    """A new readout of `spec`'s size (readouts.<task>.width, .heads) for `task` on the
    features of `encoder`, the head the task names (`task.head`, one of HEADS); with `start` (a
    split's targets) and learned queries, it starts from the task's baseline on them
    (`Task.baseline`, AttentionReadout.start_from)."""
    readout = HEADS[task.head](encoder, task, spec)
    if start is not None and task.query_dim == 0:
        readout.start_from(task.baseline(start)(torch.arange(1), None)[0])
    return readout


def attention_head(encoder: VideoViT, task: Task, spec: ReadoutSpec) -> AttentionReadout:
    """The 4DS attention readout of every task (fourds.models.readout)."""
    return configured(
        AttentionReadout,
        {"width": spec.own.width, "heads": spec.own.heads, "backend": spec.attention},
        feature_dim=encoder.cfg.width,
        grid=encoder.grid,
        frames=encoder.frames,
        num_queries=task.num_queries,
        query_dim=task.query_dim,
        out_dim=task.out_dim,
    )


def correlation_head(encoder: VideoViT, task: Task, spec: ReadoutSpec) -> CorrelationPoseReadout:
    """Local feature correlations between tubelets, as wide as the readout, for the pose
    task's outputs (fourds.models.pose_readout)."""
    return correlation_readout(encoder, spec.own.width, task.out_dim)


def motion_head(encoder: VideoViT, task: Task, spec: ReadoutSpec) -> MotionTrackingReadout:
    """The attention readout plus the image's motion, read by an as wide correlation readout
    (fourds.models.tracking_readout), for point tracking."""
    motion = correlation_readout(encoder, spec.own.width, AFFINE_OUTPUTS)
    return MotionTrackingReadout(attention_head(encoder, task, spec), motion, encoder.frames)


# The heads a task may name (`Task.head`; pose and tracking pick theirs in their options)
HEADS: dict[str, Callable[[VideoViT, Task, ReadoutSpec], torch.nn.Module]] = {
    "attention": attention_head,
    "correlation": correlation_head,
    "motion": motion_head,
}


def correlation_readout(encoder: VideoViT, width: int, out_dim: int) -> CorrelationPoseReadout:
    """A CorrelationPoseReadout `width` wide on the features of `encoder`, `out_dim` numbers
    per frame."""
    return configured(
        CorrelationPoseReadout,
        {"width": width},
        feature_dim=encoder.cfg.width,
        grid=encoder.grid,
        frames=encoder.frames,
        out_dim=out_dim,
    )


def test_features(
    encoder: VideoViT,
    test: dict[str, np.ndarray],
    num_blocks: int,
    device: torch.device,
    batch_size: int,
    budget: HostBudget = IN_MEMORY,
) -> Features:
    """The features of the clips `test` (its "video" [N, T, H, W, 3] uint8), computed once in
    eval mode and cached within `budget` (see Features): what `score` reads."""
    encoder.eval()
    return Features(encoder, test["video"], num_blocks, device, True, batch_size, budget)


def score(
    readout: AttentionReadout,
    task: Task,
    features: Features,
    targets: dict[str, torch.Tensor],
    batch_size: int,
) -> Evaluation:
    """`readout` scored (see Evaluation) on the test clips whose features `features` gives
    (`test_features`) against their targets `targets` (`task.targets` of the clips)."""
    readout.eval()
    with torch.no_grad():

        def infer(index: torch.Tensor, queries: torch.Tensor | None) -> torch.Tensor:
            given = None if queries is None else queries.to(features.device)
            return readout(features(index), given).cpu()

        return task.evaluate(infer, targets, batch_size)
