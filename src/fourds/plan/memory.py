"""Memory of one MAE pretraining step per device, under FSDP2 on N devices.

The training state and FSDP2's copies are counted from the model's parameter shapes; what a
clip adds is measured on the model itself; the phases of the step put them together. The
result is checked against measured allocator peaks by `benchmarks/memory_model.py`. All sizes
are bytes on the busiest device (rank 0, which holds the largest shard of every parameter).
Assumptions:

- State. FSDP2 shards each parameter along the dim `fourds.train.parallelize.shard_dim`
  chooses (dim 0 of a weight; a later dim the ranks divide evenly for a [1, N, d] positional
  embedding or token) in `ceil(rows / N)`-row chunks, padded to that length; rank 0 holds the
  first, full chunk, and an all-gather returns N padded chunks. Per local element: fp32
  weights (4 B), fp32 gradients (4 B) and AdamW's two fp32 moments (8 B). A single process
  (N = 1) holds the same 16 B per parameter.
- Unsharded copies ("gathered"), in the compute dtype. With N > 1 the root unit (every
  parameter outside a transformer block) stays unsharded from the start of the forward pass to
  the end of the backward pass (FSDP2 does not reshard the root after forward); the forward
  pass ends with the last block's all-gather buffer still allocated. While a block runs
  backward: the root's parameters and gradients, the block's parameters and gradients, the next
  block's prefetched parameters, and the fp32 reduce-scatter input of the block just done;
  all-gathered parameters and reduce-scatter inputs padded, gradients not. A single process
  in bf16 runs under autocast, which keeps a bf16 copy of every weight for the backward pass.
- Activations, measured (`fourds.plan.clip_memory`): one clip of the model itself runs forward
  and backward on fake tensors in the compute dtype; what each op saves for backward is filed by
  where it was saved (the embedding, each block, between blocks, the pixel head and loss), and
  each block's backward pass is followed to its widest moment. They scale with the clips per
  device. With activation checkpointing a block keeps only its input, and its backward pass
  first recomputes the rest, one block at a time.
- Pixels. The prediction, in the compute dtype, is kept by the training loop until the next
  step's forward pass returns; its fp32 cast, the target, the difference (saved by the
  squared error), its square and the loss gradients each hold one clip of fp32 values: the
  MAE computes targets and loss in fp32 in every launch mode.
- Batch. The uint8 clips on the device, and in bf16 the cast of the kept tubelets the tubelet
  embedding reads. The tubelet embedding keeps the tubelets it reads for its weight gradient
  until the backward pass reaches it: the bf16 cast (in the batch), or in fp32 the scaled
  tubelets themselves, through the whole backward pass.
- Phases. The pretrain step clears gradients before the forward pass. The peak is the largest
  of: the root's all-gather as the forward pass starts (with N > 1: the all-gather buffer and
  the unsharded parameters copied out of it exist at once), the end of the forward pass (with
  last step's prediction), the loss's backward (four clip-sized gradients and temporaries),
  each block's backward (blocks after it done: their activations freed, their gradients made;
  with checkpointing, its recomputed activations), and the optimizer step (AdamW fused on a
  GPU: no temporaries; per parameter on the CPU, where the sqrt and division temporaries of the
  largest parameters, up to about three of them, are not counted).
- Cross-checked against the real step on a simulated cluster (fourds.plan.simulate): each
  kind of 4ds block (plain, checkpointed, QK-norm and parallel) at 8 and 256 ranks agrees
  within 15% (tests/test_plan.py); `fourds plan --simulate` prints every scale's beside it.
- Not counted: the CUDA context, communication library buffers, kernel workspaces (such as the
  tubelet convolution's backward), allocator fragmentation and caching (the figure is the
  allocator's peak of allocated bytes, what torch.cuda.max_memory_allocated reports), and the
  loader's prefetched batches in host memory.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import torch

from fourds.config import MAEConfig, ModelConfig, PretrainSpec
from fourds.evaluate.precision import DTYPES
from fourds.models.factory import build_mae
from fourds.models.vit import Block, count_parameters
from fourds.plan.clip_memory import ClipMemory, measure_clip_memory
from fourds.train.parallelize import shard_dim

FP32 = 4


@dataclasses.dataclass(frozen=True)
class StepSetup:
    """One MAE pretraining step of one encoder, as the pretrain stage runs it.

    Args:
        frames, size: the clip [frames, size, size, 3].
        precision: "fp32", or "bf16" (compute; weights, gradients and AdamW stay fp32).
        attention: the backend: "sdpa", "xformers" or "math".
        on_gpu: the step runs on a GPU (the loader's uint8 batch stays on the
            host) rather than on the CPU.
    """

    model: ModelConfig
    mae: MAEConfig
    frames: int
    size: int
    precision: str
    activation_checkpointing: bool
    attention: str
    on_gpu: bool

    @classmethod
    def from_spec(cls, spec: PretrainSpec, on_gpu: bool) -> StepSetup:
        """The step the pretrain stage runs for `spec`'s scale."""
        return cls(
            model=spec.model,
            mae=spec.mae,
            frames=spec.curate.clip_frames,
            size=spec.curate.resolution,
            precision=spec.pretrain.precision,
            activation_checkpointing=spec.pretrain.checkpoints(spec.scale),
            attention=spec.attention,
            on_gpu=on_gpu,
        )

    @property
    def compute_bytes(self) -> int:
        """Bytes per element of activations and unsharded weights (2 in bf16, 4 in fp32)."""
        return DTYPES[self.precision].itemsize


def local_elements(shapes: tuple[torch.Size, ...], devices: int) -> int:
    """Elements rank 0 holds of `shapes` when each is sharded over `devices` along `shard_dim`
    (FSDP2: `ceil(rows / devices)` rows per rank; the first rank's chunk is always full)."""
    total = 0
    for shape in shapes:
        rows = shape[shard_dim(shape, devices)] if shape else 1
        total += math.ceil(rows / devices) * (math.prod(shape) // max(rows, 1))
    return total


@dataclasses.dataclass(frozen=True)
class ParameterLayout:
    """Parameter shapes of the MAE by FSDP unit: each transformer block (forward order), and
    the root (everything else: embeddings, decoder projections and head, query tokens)."""

    blocks: tuple[tuple[torch.Size, ...], ...]
    root: tuple[torch.Size, ...]
    encoder_size: int  # parameters of the encoder alone (the ladder's headline count)

    @functools.cached_property
    def block_sizes(self) -> list[int]:
        """Parameters per transformer block, in forward order."""
        return [local_elements(block, 1) for block in self.blocks]

    @functools.cached_property
    def root_size(self) -> int:
        """Parameters outside the transformer blocks."""
        return local_elements(self.root, 1)

    @functools.cached_property
    def total(self) -> int:
        """Number of trained parameters (encoder and decoder)."""
        return self.root_size + sum(self.block_sizes)

    def local(self, devices: int) -> int:
        """Elements rank 0 holds of all parameters sharded over `devices`."""
        return local_elements(self.root, devices) + sum(
            local_elements(block, devices) for block in self.blocks
        )

    def gathered(self, devices: int) -> tuple[int, list[int]]:
        """Elements of the root and of each block once all-gathered from `devices` padded
        shards (the parameter counts plus FSDP2's padding)."""
        return devices * local_elements(self.root, devices), [
            devices * local_elements(block, devices) for block in self.blocks
        ]


@dataclasses.dataclass(frozen=True)
class DeviceMemory:
    """Memory of one training step on the busiest device, in bytes.

    weights, gradients, optimizer: the (sharded) fp32 training state; gathered: the most
    unsharded copies FSDP (or autocast) holds at once; batch: the clips and masks on the device;
    activations: what the forward pass saves for backward; phases: the total at each point of
    the step where the peak can be (see the module docstring); peak: the largest of them.
    """

    weights: int
    gradients: int
    optimizer: int
    gathered: int
    batch: int
    activations: int
    phases: dict[str, int]

    @property
    def state(self) -> int:
        """Weights, gradients and optimizer state."""
        return self.weights + self.gradients + self.optimizer

    @property
    def peak(self) -> int:
        return max(self.phases.values())

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=self.phases.__getitem__)


@functools.cache
def parameter_layout(setup: StepSetup) -> ParameterLayout:
    """Parameter shapes of the MAE, built on the meta device (no memory, also for 22B)."""
    with torch.device("meta"):
        model = build_mae(setup.model, setup.mae, setup.frames, setup.size, setup.attention)
    blocks = [module for module in model.modules() if isinstance(module, Block)]
    in_blocks = {id(p) for block in blocks for p in block.parameters()}
    return ParameterLayout(
        blocks=tuple(tuple(p.shape for p in block.parameters()) for block in blocks),
        root=tuple(p.shape for p in model.parameters() if id(p) not in in_blocks),
        encoder_size=count_parameters(model.encoder),
    )


def clip_memory(setup: StepSetup) -> ClipMemory:
    """What one clip holds in the step's own forward and backward pass, measured on the model
    (fourds.plan.clip_memory)."""
    return measure_clip_memory(
        setup.model, setup.mae, setup.frames, setup.size, setup.precision, setup.attention
    )


@dataclasses.dataclass(frozen=True)
class SavedActivations:
    """Bytes per clip the forward pass leaves for the backward pass, by when they are released.

    embedding: kept before the first block (the gathers before the tubelet embedding keep only
        indices) until the end of the backward pass. after: per block in forward order, kept
        between it and the next block (the MAE-ST decoder's input projection keeps the encoder
        output) until the next block's backward ends. head: kept after the last block (pixel
        head and loss), released first. blocks: per block in forward order, what it saves (with
        activation checkpointing: its input alone). prediction: the predicted pixels, which the
        training loop holds until the next step's forward pass returns.
    """

    embedding: int
    after: tuple[int, ...]
    head: int
    blocks: tuple[int, ...]
    prediction: int

    @property
    def total(self) -> int:
        """Everything saved at the end of the forward pass, per clip."""
        return self.embedding + sum(self.after) + self.head + sum(self.blocks) + self.prediction


def saved_activations(setup: StepSetup, checkpointing: bool) -> SavedActivations:
    """What one clip's forward pass saves for backward (see `SavedActivations`)."""
    clip = clip_memory(setup)
    return SavedActivations(
        embedding=clip.embedding,
        after=tuple(block.after for block in clip.blocks),
        head=clip.head,
        blocks=tuple(block.input if checkpointing else block.saved for block in clip.blocks),
        prediction=clip.prediction,
    )


def batch_bytes(setup: StepSetup) -> int:
    """Bytes per clip of the batch on the device: the uint8 clip, the visible-token indices
    and the mask; in bf16 also the kept tubelets cast for the tubelet embedding, which keeps
    them for its backward pass (in fp32 it keeps them scaled, see `memory_per_device`)."""
    clip = clip_memory(setup)
    return clip.batch + (clip.clip if setup.precision == "bf16" else 0)


def memory_per_device(
    setup: StepSetup, devices: int, clips: int, checkpointing: bool | None = None
) -> DeviceMemory:
    """Peak memory of one training step on the busiest of `devices` FSDP ranks.

    Args:
        clips: clips per device (the global batch / devices).
        checkpointing: activation checkpointing; None takes `setup.activation_checkpointing`.
    """
    if checkpointing is None:
        checkpointing = setup.activation_checkpointing
    layout, c = parameter_layout(setup), setup.compute_bytes
    saved = saved_activations(setup, checkpointing)
    local = layout.local(devices)
    weights, gradients, optimizer = FP32 * local, FP32 * local, 2 * FP32 * local
    state = weights + gradients + optimizer
    batch = clips * batch_bytes(setup)
    # fp32 tensors the size of the prediction: its fp32 cast, target, difference and the loss's
    # gradients (targets and loss are fp32 in every launch)
    loss_pixels = clip_memory(setup).loss_pixels
    if devices > 1:  # the unsharded root, and the last block's all-gather buffer
        root, blocks = layout.gathered(devices)
        forward_copies = c * (root + blocks[-1])
    else:  # autocast's bf16 copies of the weights, saved for the backward pass
        root, forward_copies = 0, 2 * layout.total if setup.precision == "bf16" else 0
    # in fp32 the tubelet embedding keeps the scaled visible tubelets until its own backward,
    # the last (in bf16 it keeps their cast, which `batch` counts)
    kept_clip = clips * clip_memory(setup).clip if setup.precision == "fp32" else 0
    backward_copies = _backward_copies(setup, layout, devices)
    backward = _block_backward(setup, layout, saved, devices, clips, checkpointing, backward_copies)
    phases = {
        # the forward pass starts: the root's all-gather buffer and the unsharded parameters
        # FSDP2 copies out of it, beside the last step's prediction
        "root_gather": weights + optimizer + batch + 2 * c * root + clips * saved.prediction,
        # the squared error being taken: target, difference and its square exist, and so does
        # the last step's prediction (released only after the forward pass); gradients were
        # cleared before it
        "forward_end": weights
        + optimizer
        + forward_copies
        + batch
        + kept_clip
        + clips * (saved.total + saved.prediction + loss_pixels),
        # the mean's gradient, then pow's backward (x^1, 2x and grad * 2x): four clip tensors
        "loss_backward": weights
        + optimizer
        + forward_copies
        + batch
        + kept_clip
        + clips * (saved.total + 4 * loss_pixels),
        "block_backward": weights + optimizer + batch + kept_clip + max(backward),
        "optimizer_step": state + batch + clips * saved.prediction,
    }
    return DeviceMemory(
        weights=weights,
        gradients=gradients,
        optimizer=optimizer,
        gathered=max(forward_copies, *backward_copies),
        batch=batch,
        activations=clips * saved.total,
        phases=phases,
    )


def _backward_copies(setup: StepSetup, layout: ParameterLayout, devices: int) -> list[int]:
    """Unsharded copies while each block runs backward (forward order).

    FSDP: the root's and this block's all-gathered parameters (padded shards) and their
    gradients (unpadded), the next block's prefetched parameters (compute dtype), and the fp32
    reduce-scatter input (padded) of the block just done. A single process: autocast's bf16
    weight copies, if any.
    """
    if devices == 1:
        return [2 * layout.total if setup.precision == "bf16" else 0] * len(layout.blocks)
    c, (root, gathered) = setup.compute_bytes, layout.gathered(devices)
    copies = []
    for index, size in enumerate(layout.block_sizes):
        prefetched = gathered[index - 1] if index > 0 else 0
        reducing = gathered[index + 1] if index + 1 < len(gathered) else 0
        parameters = root + gathered[index] + prefetched
        copies.append(c * (parameters + layout.root_size + size) + FP32 * reducing)
    return copies


def _block_backward(
    setup: StepSetup,
    layout: ParameterLayout,
    saved: SavedActivations,
    devices: int,
    clips: int,
    checkpointing: bool,
    copies: list[int],
) -> list[int]:
    """Memory beyond weights, AdamW state and batch while each block runs backward (forward
    order), given the unsharded `copies` of each (`_backward_copies`).

    The blocks after it are done: their activations are freed and their gradients exist
    (sharded after the reduce-scatter; a single process also has the root's gradients, the
    pixel head's coming first). Still saved: the embedding, the blocks up to this one and what
    was kept between them (the encoder output while a decoder block runs), and the prediction.
    On top: the block's measured backward (with checkpointing, after recomputing what it saves
    but its input).
    """
    local = [local_elements(shapes, devices) for shapes in layout.blocks]
    done = [sum(local) - before for before in itertools.accumulate(local)]
    kept = list(itertools.accumulate(saved.blocks))
    between = [0, *itertools.accumulate(saved.after)]
    root_gradients = FP32 * layout.root_size if devices == 1 else 0
    totals = []
    for index, block in enumerate(clip_memory(setup).blocks):
        recomputed = block.saved - block.input if checkpointing else 0
        alive = (
            saved.embedding
            + between[index]
            + kept[index]
            + saved.prediction
            + block.backward
            + recomputed
        )
        gradients = FP32 * done[index] + root_gradients
        totals.append(gradients + copies[index] + clips * alive)
    return totals
