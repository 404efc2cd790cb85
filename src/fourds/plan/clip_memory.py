"""What one clip's pass through the MAE keeps in memory, measured on the model itself.

The MAE of a step setup is built and run for one clip, forward and backward, under
FakeTensorMode (shapes and dtypes, no storage: 4DS-j measures on a laptop), with its parameters
in the compute dtype as FSDP's bf16 policy gathers them. Two recorders watch it:

- autograd's saved-tensor hooks see every tensor an op keeps for the backward pass; each is
  counted once (by storage, whole: a view keeps its base alive) and filed by where the forward
  pass was: in the tubelet embedding (the kept tubelets it reads), before the first
  transformer block (the embedding), inside block i, between block i and i + 1, or after the
  last block (pixel head and loss);
- a dispatch mode follows every storage an op allocates until it is freed, so the live bytes
  over each block's backward pass are known.

Parameters, their gradients and the inputs (uint8 clip, masks) are not counted as activations:
the memory model (`fourds.plan.memory`) adds the training state and FSDP's copies. The sdpa and
xformers backends run as the CPU's fused sdpa kernel, which keeps what the CUDA kernels keep
(the output, in [B, N, heads, head_dim] memory order, and an fp32 log-sum-exp per head and
token); `math` runs as written. One difference is left: in bf16 the CPU's LayerNorm keeps its
statistics in bf16 where CUDA's keeps fp32, 2 bytes per token and LayerNorm less (0.14% of
4DS-j's bf16 peak).
"""

from __future__ import annotations

import dataclasses
import functools
import weakref

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from fourds.evaluate.forked import own_process
from fourds.evaluate.precision import DTYPES
from fourds.models.factory import build_mae
from fourds.models.mae import MaskedAutoencoder
from fourds.models.vit import Block


@dataclasses.dataclass(frozen=True)
class Tokens:
    """Token and pixel counts per clip, read from the model and its masks."""

    full: int  # tubelets in the clip (N)
    visible: int  # tokens the encoder sees (n)
    queries: int  # 4DS query tokens (0 with the MAE-ST decoder)
    pixels: int  # frames * size * size * 3


@dataclasses.dataclass(frozen=True)
class BlockMemory:
    """One transformer block's share of a clip, in bytes.

    input: its input (what it keeps with activation checkpointing).
    saved: what its forward pass keeps for backward, its input included. backward: what its
    backward pass holds beyond the activations saved before it: the incoming gradient and the
    widest moment's temporaries (without checkpointing; recomputation adds `saved - input`).
    after: what the forward pass keeps between this block and the next (the MAE-ST decoder's
    input projection keeps the encoder's output), released once the next block's backward ends.
    """

    input: int
    saved: int
    backward: int
    after: int


@dataclasses.dataclass(frozen=True)
class ClipMemory:
    """Bytes one clip holds in the MAE's own forward and backward pass.

    tokens: token and pixel counts. blocks: every transformer block in forward order.
    embedding: kept before the first block (the tubelets are cut out before they are
    embedded, so the gathers keep only indices), until the end of the backward pass. clip: the
    kept tubelets as the tubelet embedding keeps them for its weight gradient (scaled to fp32,
    or their bf16 cast). head: kept after the last
    block (pixel head and loss), released first. prediction: the predicted pixels, in the
    compute dtype as the model returns them. loss_pixels: one fp32 tensor of the prediction's
    size (targets and loss are fp32 in every launch mode).
    batch: the uint8 clip, visible-token indices and mask as the model reads them.
    """

    tokens: Tokens
    blocks: tuple[BlockMemory, ...]
    embedding: int
    clip: int
    head: int
    prediction: int
    loss_pixels: int
    batch: int


class _LiveBytes(TorchDispatchMode):
    """Records, in order, every storage an op allocates (+bytes) and frees (-bytes), and
    markers set from outside, as a timeline to replay. Storages are numbered as they appear
    (an address is reused once freed); `ignored` ones (alive throughout) are not recorded."""

    def __init__(self, ignored: set[int]):
        super().__init__()
        self.events: list[tuple[str, object, int]] = []
        self.ignored = ignored
        self.alive: dict[int, int] = {}  # storage address -> number

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in pytree.tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self._track(leaf.untyped_storage())
        return out

    def _track(self, storage: torch.UntypedStorage) -> None:
        address = storage._cdata
        if address in self.ignored or address in self.alive:
            return
        number = self.alive[address] = len(self.events)
        self.events.append(("alloc", number, storage.nbytes()))
        weakref.finalize(storage, self._free, address, number, storage.nbytes())

    def _free(self, address: int, number: int, size: int) -> None:
        del self.alive[address]
        self.events.append(("free", number, size))

    def number(self, tensor: torch.Tensor) -> int | None:
        """The number of a live tensor's storage (None: not allocated while recording)."""
        return self.alive.get(tensor.untyped_storage()._cdata)

    def mark(self, name: tuple) -> None:
        self.events.append(("mark", name, 0))


class _SavedByPlace(torch.autograd.graph.saved_tensors_hooks):
    """Files every tensor saved for backward by the place in the forward pass it was saved
    from, and marks each block's backward pass on the timeline of `live`.

    saved: bytes per place, each storage counted once. inputs: per block, its input's bytes.
    incoming: per block, the bytes of the gradient that starts its
    backward pass.
    """

    def __init__(
        self, model: MaskedAutoencoder, blocks: list[Block], live: _LiveBytes, preexisting: set[int]
    ):
        super().__init__(self._pack, lambda saved: saved)
        self.live, self.counted = live, set(preexisting)
        self.place: tuple = ("embedding",)
        self.saved: dict[tuple, int] = {}
        self.inputs, self.incoming = {}, {}
        self.handles = []
        embedding = model.encoder.patch_embed
        self._hook(embedding, lambda *_: self._at(("clip",)), lambda *_: self._at(("embedding",)))
        for index, block in enumerate(blocks):
            self._hook(
                block,
                functools.partial(self._block_starts, index),
                functools.partial(self._block_ends, index),
            )

    def _hook(self, module, before, after) -> None:
        self.handles.append(module.register_forward_pre_hook(before))
        self.handles.append(module.register_forward_hook(after))

    def _at(self, place: tuple) -> None:
        self.place = place

    def _block_starts(self, index: int, module, args) -> None:
        (x,) = args
        self.inputs[index] = x.untyped_storage().nbytes()
        x.register_hook(lambda grad: self.live.mark(("end", index)))
        self.place = ("block", index)

    def _block_ends(self, index: int, module, args, output) -> None:
        def starts(grad):
            self.incoming[index] = grad.untyped_storage().nbytes()
            self.live.mark(("start", index))

        output.register_hook(starts)
        self.place = ("after", index)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        key = tensor.untyped_storage()._cdata
        if key not in self.counted:
            self.counted.add(key)
            self.saved[self.place] = (
                self.saved.get(self.place, 0) + tensor.untyped_storage().nbytes()
            )
        return tensor

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()
        super().__exit__(*exc)


def _peaks(events: list[tuple[str, object, int]], excluded: set[int]) -> dict[object, int]:
    """Replay a timeline without the `excluded` storages: the live bytes when each marker was
    set, and under ("peak", i) the most live bytes between ("start", i) and ("end", i)."""
    live, marks, open_windows = 0, {}, {}
    for kind, key, size in events:
        if kind == "mark":
            marks[key] = live
            if key[0] == "start":
                open_windows[key[1]] = live
            elif key[0] == "end":
                marks[("peak", key[1])] = open_windows.pop(key[1])
            continue
        if key in excluded:
            continue
        live += size if kind == "alloc" else -size
        for index, peak in open_windows.items():
            open_windows[index] = max(peak, live)
    return marks


@functools.cache
@own_process
def measure_clip_memory(
    model_cfg, mae_cfg, frames: int, size: int, precision: str, attention: str
) -> ClipMemory:
    """Run one clip of the MAE forward and backward on fake tensors and measure it (see the
    module docstring). Arguments as `fourds.models.factory.build_mae`, with the compute `precision`
    ("fp32" or "bf16")."""
    backend = "math" if attention == "math" else "sdpa"
    with torch.device("meta"):
        model = build_mae(model_cfg, mae_cfg, frames, size, backend)
    model.to(DTYPES[precision])
    with FakeTensorMode(allow_non_fake_inputs=True):
        model.to_empty(device="cpu")
        video = torch.empty(1, frames, size, size, 3, dtype=torch.uint8)
        keep_index, mask = model.sample_masks(1)
        blocks = [module for module in model.modules() if isinstance(module, Block)]
        preexisting = {t.untyped_storage()._cdata for t in (video, keep_index, mask)}
        preexisting |= {p.untyped_storage()._cdata for p in model.parameters()}
        live = _LiveBytes(preexisting)
        recorder = _SavedByPlace(model, blocks, live, preexisting)
        with live, recorder:
            loss, prediction = model(video, keep_index, mask)
            loss.backward()
        marks = _peaks(live.events, {live.number(p.grad) for p in model.parameters()})
        tokens = Tokens(
            full=model.encoder.num_tokens,
            visible=keep_index.shape[1],
            queries=model.decoder.query_tokens,
            pixels=video.numel(),
        )
        saved = recorder.saved
        block_memory = tuple(
            BlockMemory(
                input=recorder.inputs[index],
                saved=saved.get(("block", index), 0),
                backward=marks[("peak", index)]
                - marks[("start", index)]
                + recorder.incoming[index],
                after=saved.get(("after", index), 0) if index + 1 < len(blocks) else 0,
            )
            for index in range(len(blocks))
        )
        return ClipMemory(
            tokens=tokens,
            blocks=block_memory,
            embedding=saved.get(("embedding",), 0),
            clip=saved.get(("clip",), 0),
            head=saved.get(("after", len(blocks) - 1), 0),
            prediction=prediction.untyped_storage().nbytes(),
            loss_pixels=4 * prediction.numel(),
            batch=sum(t.untyped_storage().nbytes() for t in (video, keep_index, mask)),
        )
