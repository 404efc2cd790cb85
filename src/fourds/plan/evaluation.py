"""Peak GPU memory of the readout and fidelity stages of each scale, measured on fake tensors.

Both stages run on one GPU, unsharded: their large models are frozen, and in bf16
(`readout.precision`, `fidelity.precision`) even 4DS-j's 22B-parameter encoder takes about 41
GiB, which leaves an 80 GB GPU room for its forward pass; in fp32 (81 GiB) it fits no 80 GB
GPU. So a frozen encoder is cast to bf16 rather than sharded. The stages' own modules and
device work run under FakeTensorMode (shapes and dtypes, no storage), with torch's MemTracker
counting what is allocated, as `fourds.plan.simulate` does for a pretraining step:

- readout@<scale>-<regime>, frozen and the controls, per task: the encoder in
  `readout.precision`; (1) the feature pass of one batch of `readouts.<task>.batch_size` clips
  through the blocks the readout reads (`fourds.evaluate.readout.encode_clips`; the features
  then go to host memory), and (2) two training steps of the task's readout on a batch of fp32
  features (`fourds.evaluate.readout.readout_step`; the second has the AdamW state of the
  first) beside the encoder, which stays on the device for scoring. The task's loss is
  replaced by the mean square of the outputs (its tensors are output-sized); tasks with given
  queries get `GIVEN_QUERIES` per clip, classification `CLASSES` classes; a converted readout,
  scored without training, is counted as if trained. Scoring runs the same passes without
  gradients, so it peaks lower. `finetuned` stages, which train the fp32 encoder unsharded (16
  bytes per parameter before activations), are not planned.
- fidelity@<scale>: (1) the MAE in `fidelity.precision` reconstructing a batch of
  `fidelity.batch_size` clips (`fourds.evaluate.reconstruction.reconstruct`), then, the MAE
  released, (2) the fourds extractor (the encoder of `fidelity.extractor_scale`) in the same
  precision on a batch of `fidelity.batch_size` frames
  (`fourds.evaluate.fidelity.frame_features`). An extractor read from a file
  (`fidelity.encoder_weights`) or InceptionV3 is not measured.

The passes without gradients (the feature pass, the reconstructions, the extractor's features)
run on the encoder's first `MEASURED_BLOCKS` blocks, the others' weights added: without autograd
each block frees the last one's activations, so the peak of a deeper pass is its weights more
(`tests/plan/test_evaluation.py` checks this against the whole depth), and a tracker's cost grows
with every op and with every parameter it follows (4DS-j's 48 blocks: minutes).

Modules are built and cast on the meta device, then given fake storage (`Module.to` cannot
cast fake parameters: it swaps them, which fails), and keep `requires_grad` (MemTracker hooks
every parameter); the passes that do not train run under no_grad, as the stages' do. xformers
attention (CUDA only) runs as sdpa, also a fused kernel. Not measured: the CUDA context, kernel
workspaces and allocator fragmentation (the plan's headroom).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TypeVar

import numpy as np
import torch
from torch._subclasses.fake_tensor import FakeTensorMode, unset_fake_temporarily

from fourds.config import (
    FidelityConfig,
    ModelConfig,
    PretrainSpec,
    ReadoutConfig,
    ReadoutSpec,
    TaskReadoutConfig,
)
from fourds.config.regimes import PRETRAINED
from fourds.evaluate.fidelity import frame_features
from fourds.evaluate.forked import own_process
from fourds.evaluate.precision import DTYPES
from fourds.evaluate.readout import (
    build_readout,
    clip_geometry,
    encode_clips,
    readout_optimizer,
    readout_step,
)
from fourds.evaluate.reconstruction import reconstruct
from fourds.evaluate.tasks import TaskContext, make_task
from fourds.models.factory import build_encoder, scale_mae
from fourds.models.readout import readout_block_count
from fourds.models.vit import VideoViT
from fourds.plan.simulate import DEVICE, plain_tracker, tracked_peak

MEASURED_BLOCKS = 2  # of the encoder, in a pass without gradients (module docstring)
GIVEN_QUERIES = 256  # points or boxes per clip (the embedded world tracks 64 points)
CLASSES = 400  # classification outputs (Kinetics-400's classes)
Module = TypeVar("Module", bound=torch.nn.Module)


@dataclasses.dataclass(frozen=True)
class ReadoutMemory:
    """Bytes on the GPU of one task of readout@<scale>-<regime>: the frozen encoder's weights,
    and the peak of the feature pass and of the readout's training step (each with the
    weights)."""

    task: str
    weights: int
    features: int
    head_step: int

    @property
    def peak(self) -> int:
        return max(self.features, self.head_step)


@dataclasses.dataclass(frozen=True)
class FidelityMemory:
    """Bytes on the GPU of fidelity@<scale>: the MAE's weights and the peak of its
    reconstructions; the extractor's weights and the peak of its features (None: not
    measured, see the module docstring)."""

    mae: int
    reconstruct: int
    extractor: int | None
    extract: int | None

    @property
    def peak(self) -> int:
        return max(self.reconstruct, self.extract or 0)


@dataclasses.dataclass(frozen=True)
class EvaluationMemory:
    """One scale's evaluation stages: its busiest readout task, and its fidelity stage."""

    scale: str
    readout: ReadoutMemory
    fidelity: FidelityMemory


def evaluation_memory(
    spec: PretrainSpec,
    readout: ReadoutConfig,
    readouts: Mapping[str, TaskReadoutConfig],
    fidelity: FidelityConfig,
    extractor: ModelConfig,
) -> EvaluationMemory:
    """The readout (every task of readout.tasks; the one with the highest peak is kept) and
    fidelity stages of `spec`'s scale, measured as the module docstring says; `extractor`: the
    architecture of fidelity.extractor_scale."""
    readout_memories = readout_memory(spec, readout, readouts)
    busiest = max(readout_memories, key=lambda memory: memory.peak)
    return EvaluationMemory(spec.scale, busiest, fidelity_memory(spec, fidelity, extractor))


@own_process
def readout_memory(
    spec: PretrainSpec,
    readout: ReadoutConfig,
    readouts: Mapping[str, TaskReadoutConfig],
    measured_blocks: int | None = MEASURED_BLOCKS,
) -> list[ReadoutMemory]:
    """The readout stages of `spec`'s scale, each task of readout.tasks in its
    order (`readouts`: each task's settings); the feature pass on `measured_blocks` of the
    encoder's blocks (None: all)."""
    spec = _with_cpu_attention(spec)
    num_blocks = readout_block_count(spec.model.depth, readout.readout_depth)
    weights = _weight_bytes(_meta(lambda: _encoder(spec, spec.model), readout.precision))
    shallow = _shallow(spec.model, measured_blocks)
    with FakeTensorMode(allow_non_fake_inputs=True):
        encoder = _fake(lambda: _encoder(spec, shallow), readout.precision)
        deeper = weights - _weight_bytes(encoder)  # the blocks the measured encoder leaves out
        read = min(num_blocks, shallow.depth)
        sizes = {readouts[task].batch_size for task in readout.tasks}
        features = {size: deeper + _feature_pass_peak(encoder, size, read) for size in sizes}
        specs = [
            ReadoutSpec(task, PRETRAINED, readout, readouts[task], spec) for task in readout.tasks
        ]
        return [
            ReadoutMemory(
                each.task,
                weights,
                features[each.own.batch_size],
                deeper + _readout_step_peak(each, encoder),
            )
            for each in specs
        ]


@own_process
def fidelity_memory(
    spec: PretrainSpec,
    fidelity: FidelityConfig,
    extractor: ModelConfig,
    measured_blocks: int | None = MEASURED_BLOCKS,
) -> FidelityMemory:
    """fidelity@<scale> of `spec`'s scale: the MAE's reconstructions, then the features of the
    fourds extractor, an encoder of architecture `extractor` (fidelity.extractor_scale's); both
    on `measured_blocks` of their encoder's blocks (None: all)."""
    spec, clips = _with_cpu_attention(spec), fidelity.batch_size
    frames, size = spec.curate.clip_frames, spec.curate.resolution
    shallow_spec = dataclasses.replace(spec, model=_shallow(spec.model, measured_blocks))
    mae_weights = _weight_bytes(_meta(lambda: scale_mae(spec), fidelity.precision))
    weights = _weight_bytes(_meta(lambda: _encoder(spec, extractor), fidelity.precision))
    with FakeTensorMode(allow_non_fake_inputs=True):
        mae = _fake(lambda: scale_mae(shallow_spec), fidelity.precision)

        def reconstruct_batch() -> None:
            video = torch.empty((clips, frames, size, size, 3), dtype=torch.uint8)
            reconstruct(mae, video, *mae.sample_masks(clips))

        reconstructing = mae_weights - _weight_bytes(mae) + _peak(reconstruct_batch, mae)
        if fidelity.feature_extractor != "fourds" or fidelity.encoder_weights:
            return FidelityMemory(mae_weights, reconstructing, None, None)
        encoder = _fake(
            lambda: _encoder(spec, _shallow(extractor, measured_blocks)), fidelity.precision
        )

        def extract_batch() -> None:
            with torch.no_grad():
                frame_features(encoder, torch.empty((clips, 3, size, size), dtype=torch.uint8))

        extracting = weights - _weight_bytes(encoder) + _peak(extract_batch, encoder)
        return FidelityMemory(mae_weights, reconstructing, weights, extracting)


def _shallow(model: ModelConfig, blocks: int | None) -> ModelConfig:
    """`model` with at most `blocks` blocks (None: as it is)."""
    if blocks is None or model.depth <= blocks:
        return model
    return dataclasses.replace(model, depth=blocks)


def _feature_pass_peak(encoder: VideoViT, clips: int, num_blocks: int) -> int:
    """Peak bytes while the encoder computes the readout features of `clips` clips."""

    def feature_pass() -> None:
        shape = (clips, encoder.frames, encoder.size, encoder.size, 3)
        video = torch.empty(shape, dtype=torch.uint8)
        with torch.no_grad():
            encode_clips(encoder, video, num_blocks)

    return _peak(feature_pass, encoder)


def _readout_step_peak(spec: ReadoutSpec, encoder: VideoViT) -> int:
    """Peak bytes of a training step of the readout `spec` (the second step: it has the AdamW
    state of the first) beside the encoder."""
    cfg, shared = spec.own, spec.shared
    context = TaskContext(cfg.options, ({"label": np.arange(CLASSES)},))
    task = make_task(spec.task, clip_geometry(encoder), context)
    readout = _fake(lambda: build_readout(encoder, task, spec), "fp32")
    optimizer = readout_optimizer(
        readout, encoder, spec.regime, cfg.lr, cfg.weight_decay, shared.finetune_lr_scale
    )
    shape = (cfg.batch_size, encoder.num_tokens, encoder.cfg.width)

    def step() -> None:
        queries = torch.rand(cfg.batch_size, GIVEN_QUERIES, task.query_dim)
        batch = {"queries": queries} if task.query_dim else {}
        features = torch.empty(shape, dtype=torch.float32)
        readout_step(readout, optimizer, features, batch, _mean_square)

    # the encoder's weights stay on the device untouched: added, not tracked (a tracker's cost
    # grows with the modules it follows)
    return _weight_bytes(encoder) + _peak(step, readout, optimizer, runs=2)


def _mean_square(outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The stand-in for a task's loss: the mean square of the outputs [B, Q, out_dim]."""
    return outputs.square().mean()


def _peak(
    work: Callable[[], None], *tracked: torch.nn.Module | torch.optim.Optimizer, runs: int = 1
) -> int:
    """Peak bytes while `work` runs for the last of `runs` times (entering the tracker resets
    its peak), counting `tracked`'s weights, gradients and optimizer state."""
    tracker = plain_tracker(*tracked)
    for _ in range(runs):
        tracker.reset_mod_stats()
        with tracker:
            work()
    return tracked_peak(tracker).total


def _encoder(spec: PretrainSpec, model: ModelConfig) -> VideoViT:
    """An encoder of architecture `model` for `spec`'s clips, with its attention backend
    (placeholder weights)."""
    curate = spec.curate
    return build_encoder(model, curate.clip_frames, curate.resolution, spec.attention)


def _meta(build: Callable[[], Module], precision: str) -> Module:
    """`build()` with its weights in `precision`'s dtype on the meta device (no memory)."""
    with torch.device("meta"):
        return build().to(DTYPES[precision])


def _fake(build: Callable[[], Module], precision: str) -> Module:
    """`build()` with its weights in `precision`'s dtype as fake CPU tensors, in eval mode
    (under a FakeTensorMode that allows real inputs): built and cast on the meta device, which
    skips its initialisation, then given fake storage."""
    with unset_fake_temporarily():
        module = _meta(build, precision)
    return module.to_empty(device=DEVICE).eval()


def _weight_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def _with_cpu_attention(spec: PretrainSpec) -> PretrainSpec:
    """`spec` with xformers attention (CUDA only) replaced by sdpa."""
    if spec.attention != "xformers":
        return spec
    return dataclasses.replace(spec, attention="sdpa")
