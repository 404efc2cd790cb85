"""Convert the official 4DS checkpoints (google-deepmind/representations4d) to fourds weights.

The official `.npz` files hold Flax parameters under "/"-joined paths. A full depth model
(`scaling4d_dist_b_depth.npz`) keeps the backbone under `params/layers_0/` and the depth readout
under `params/layers_2/`; a backbone-only file keeps the backbone directly under `params/`.
The encoder becomes a fourds weights file (see `fourds.models.weights`) that `load_encoder`
reads; the readout, when present, becomes a sibling `<out stem>-readout.pt` that `load_readout`
reads. Shapes below for 4DS-B: D=768, 12 heads x 64, MLP 3072, tubelet 2x16x16, grid 8x14x14.

Backbone, P = the backbone prefix, L = P/processor/layers_{i}:
    P/encoder/patch_embedding/Conv_0/kernel [2,16,16,3,D]  patch_embed.weight [D,3,2,16,16]
    P/encoder/patch_embedding/Conv_0/bias [D]              patch_embed.bias
    P/encoder/posenc/embeddings [8,14,14,D]                pos_embed [1, 8*14*14, D]
    L/attention_norm/{scale,bias} [D]                      blocks.i.norm1.{weight,bias}
    L/attention/query/{kernel,bias} [D,12,64], [12,64]     blocks.i.attn.q [D, D]
    L/attention/{key,value}/... as query                   blocks.i.attn.kv [2D, D], k then v
    L/attention/out/kernel [12,64,D], bias [D]             blocks.i.attn.proj
    L/mlp_norm/{scale,bias} [D]                            blocks.i.norm2.{weight,bias}
    L/mlp/dense_in/{kernel,bias} [D,3072], [3072]          blocks.i.mlp.0
    L/mlp/dense_out/{kernel,bias} [3072,D], [D]            blocks.i.mlp.2

Depth readout, R = params/layers_2 (width W = 1024 = 16 heads x 64, Q = 6272 queries):
    R/LayerNorm_0/{scale,bias} [D]                         feature_norm
    R/temporal_posenc/embeddings [16,1,D]                  temporal_embed [1,16,1,D]
    R/query [Q,16,64]                                      queries [1,Q,W]
    (no query projection in the official readout)          cross_attn.q = identity
    R/{key,value}_embedding/{kernel,bias} [D,16,64]        cross_attn.kv [2W, D], k then v
    R/Dense_0/{kernel,bias} [W,W]                          cross_attn.proj
    R/LayerNorm_1/{scale,bias} [W]                         norm
    R/MLP_0/Dense_0, R/MLP_0/Dense_1 [W,4W], [4W,W]        mlp.0, mlp.2
    R/Dense_1/{kernel,bias} [W,128]                        head [128, W]: 2x8x8 pixels x 1

Flax Dense kernels are [in, out] (a torch Linear weight is [out, in]); multi-head kernels
[in, heads, head_dim] flatten heads-major, as `Attention` splits its projections.

The official readout predicts linear depth (no exp) for the pixels of each output patch, in
(t, y, x, channel) order, with queries in raster order over the clip's patch grid: 2x8x8 pixels
of one channel for the released depth model, (T/2, H/8, W/8) patches. The patch and channel
count are read from the arrays (`head_layout`); fourds' `DepthTask` predicts log-depth per
encoder tubelet. The readout file therefore records `depth_output: "linear"`, `output_patch`
and `channels`: undo it with `unpatchify` on that patch and grid, without exp.

Both files record `convention: "official"` (fourds.models.conventions): loading them
rebuilds the official model's numerics, not fourds' own: tanh GELU and the one-pass LayerNorm
variance (Flax's defaults) in the encoder and the readout, the readout's block as the official
code picks it (`readout_block_count`), and the readout's temporal resize before its LayerNorm
with JAX's cubic kernel (Keys a = -0.5, edge weights renormalised). The converted model then
matches the official forward pass to float32 precision end to end
(tests/models/test_convert.py: within 1e-5 relative of a float64 numpy re-implementation of
the official blocks).
"""

from __future__ import annotations

import dataclasses
import math
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from fourds.config import ModelConfig
from fourds.errors import ConvertError
from fourds.models.readout import AttentionReadout
from fourds.models.weights import check_weights_output, read_payload, save_mae, write_payload

BACKBONE_PREFIXES = ("params/layers_0/", "params/")
READOUT_PREFIX = "params/layers_2/"
PATCH_KERNEL = "encoder/patch_embedding/Conv_0/kernel"
READOUT_FORMAT = "fourds-readout-v1"
CONVENTION = "official"  # the numerics converted weights are loaded with
ORIGIN = "official 4DS checkpoint (google-deepmind/representations4d)"

StateDict = dict[str, torch.Tensor]


class Checkpoint:
    """The arrays of one official `.npz`, read by key with shape checks.

    Remembers which keys were read, so that leftovers under a converted prefix (a layer this
    converter does not know) are reported instead of silently dropped.
    """

    def __init__(self, path: Path, arrays: np.lib.npyio.NpzFile):
        self.path, self.arrays = path, arrays
        self.keys = set(arrays.files)
        self.used: set[str] = set()

    def shape(self, key: str, rank: int) -> tuple[int, ...]:
        """The shape of `key`, which must have `rank` dimensions."""
        self._require(key)
        shape = tuple(self.arrays[key].shape)
        if len(shape) != rank:
            raise ConvertError(f"{self.path}: {key}: expected {rank} dimensions, found {shape}")
        return shape

    def tensor(self, key: str, shape: tuple[int, ...]) -> torch.Tensor:
        """The array at `key` as a float32 tensor, after checking it has exactly `shape`."""
        self._require(key)
        array = self.arrays[key]
        if tuple(array.shape) != shape:
            raise ConvertError(
                f"{self.path}: {key}: expected shape {shape}, found {tuple(array.shape)}"
            )
        self.used.add(key)
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    def unused(self, prefix: str) -> list[str]:
        """Keys under `prefix` that no tensor() call has read."""
        return sorted(k for k in self.keys - self.used if k.startswith(prefix))

    def _require(self, key: str) -> None:
        if key not in self.keys:
            raise ConvertError(f"{self.path}: missing key {key!r}")


# Where the official 4DS checkpoints are published (google-deepmind/representations4d).
RELEASES = "https://storage.googleapis.com/representations4d/checkpoints"


def open_checkpoint(path: str | Path) -> Checkpoint:
    """Open an official `.npz` lazily (arrays are read one key at a time)."""
    path = Path(path)
    if not path.is_file():
        raise ConvertError(
            f"{path}: not found; download an official 4DS .npz checkpoint (the links are in "
            f"docs/official-checkpoints.md: {RELEASES}/scaling4d_dist_b.npz and others)"
        )
    try:
        arrays = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ConvertError(f"{path}: not an .npz archive ({error})") from None
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise ConvertError(f"{path}: a single .npy array, not an .npz archive")
    return Checkpoint(path, arrays)


def backbone_prefix(ckpt: Checkpoint) -> str:
    """`params/layers_0/` (full model) or `params/` (backbone only), whichever is present."""
    for prefix in BACKBONE_PREFIXES:
        if prefix + PATCH_KERNEL in ckpt.keys:
            return prefix
    expected = " or ".join(repr(prefix + PATCH_KERNEL) for prefix in BACKBONE_PREFIXES)
    raise ConvertError(f"{ckpt.path}: no 4DS backbone: missing key {expected}")


def dense(kernel: torch.Tensor) -> torch.Tensor:
    """Flax Dense/DenseGeneral kernel [in, *out] -> torch Linear weight [prod(out), in]."""
    return kernel.reshape(kernel.shape[0], -1).T


def dense_out(kernel: torch.Tensor) -> torch.Tensor:
    """Flax attention output kernel [heads, head_dim, out] -> Linear weight [out, heads*hd]."""
    return kernel.reshape(-1, kernel.shape[-1]).T


def model_config(ckpt: Checkpoint, prefix: str) -> tuple[ModelConfig, int, int]:
    """The encoder architecture and its clip (frames, size), read from the parameter shapes."""
    *tubelet, _, width = ckpt.shape(prefix + PATCH_KERNEL, rank=5)
    steps, rows, columns, _ = ckpt.shape(f"{prefix}encoder/posenc/embeddings", rank=4)
    block = f"{prefix}processor/layers_0/"
    _, heads, _ = ckpt.shape(block + "attention/query/kernel", rank=3)
    _, mlp_dim = ckpt.shape(block + "mlp/dense_in/kernel", rank=2)
    depth = 0
    while f"{prefix}processor/layers_{depth}/attention_norm/scale" in ckpt.keys:
        depth += 1
    size = rows * tubelet[1]
    if columns * tubelet[2] != size:
        raise ConvertError(
            f"{ckpt.path}: non-square clips ({rows}x{tubelet[1]} by {columns}x{tubelet[2]} "
            "pixels) are not supported"
        )
    cfg = ModelConfig(
        width=width,
        depth=depth,
        heads=heads,
        mlp_dim=mlp_dim,
        tubelet=tuple(tubelet),
        qk_norm=False,
        parallel_blocks=False,
        bias=True,
    )
    return cfg, steps * tubelet[0], size


def block_state(ckpt: Checkpoint, block: str, cfg: ModelConfig) -> StateDict:
    """One transformer block (Flax prefix `block`, ending in "/") -> `Block` state dict."""
    dim, heads, hidden = cfg.width, cfg.heads, cfg.mlp_dim
    heads_shape = (heads, dim // heads)

    def projection(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        kernel = ckpt.tensor(f"{block}attention/{name}/kernel", (dim, *heads_shape))
        return dense(kernel), ckpt.tensor(f"{block}attention/{name}/bias", heads_shape).flatten()

    (q, q_bias), (k, k_bias), (v, v_bias) = map(projection, ("query", "key", "value"))
    out = f"{block}attention/out/"
    mlp_in, mlp_out = f"{block}mlp/dense_in/", f"{block}mlp/dense_out/"
    return {
        "norm1.weight": ckpt.tensor(f"{block}attention_norm/scale", (dim,)),
        "norm1.bias": ckpt.tensor(f"{block}attention_norm/bias", (dim,)),
        "attn.q.weight": q,
        "attn.q.bias": q_bias,
        "attn.kv.weight": torch.cat([k, v]),
        "attn.kv.bias": torch.cat([k_bias, v_bias]),
        "attn.proj.weight": dense_out(ckpt.tensor(out + "kernel", (*heads_shape, dim))),
        "attn.proj.bias": ckpt.tensor(out + "bias", (dim,)),
        "norm2.weight": ckpt.tensor(f"{block}mlp_norm/scale", (dim,)),
        "norm2.bias": ckpt.tensor(f"{block}mlp_norm/bias", (dim,)),
        "mlp.0.weight": dense(ckpt.tensor(mlp_in + "kernel", (dim, hidden))),
        "mlp.0.bias": ckpt.tensor(mlp_in + "bias", (hidden,)),
        "mlp.2.weight": dense(ckpt.tensor(mlp_out + "kernel", (hidden, dim))),
        "mlp.2.bias": ckpt.tensor(mlp_out + "bias", (dim,)),
    }


def encoder_state(
    ckpt: Checkpoint, prefix: str, cfg: ModelConfig, frames: int, size: int
) -> StateDict:
    """The backbone under `prefix` -> `VideoViT` state dict.

    The Conv kernel [t, p, q, 3, D] becomes the Conv3d weight [D, 3, t, p, q]; the position
    embedding [T', h, w, D] flattens to [1, T'*h*w, D] in the encoder's (t, h, w) token order.
    """
    t, p, q = cfg.tubelet
    grid = (frames // t, size // p, size // q)
    conv = f"{prefix}encoder/patch_embedding/Conv_0/"
    kernel = ckpt.tensor(conv + "kernel", (t, p, q, 3, cfg.width))
    positions = ckpt.tensor(f"{prefix}encoder/posenc/embeddings", (*grid, cfg.width))
    state = {
        "patch_embed.weight": kernel.permute(4, 3, 0, 1, 2),
        "patch_embed.bias": ckpt.tensor(conv + "bias", (cfg.width,)),
        "pos_embed": positions.reshape(1, -1, cfg.width),
    }
    for index in range(cfg.depth):
        block = block_state(ckpt, f"{prefix}processor/layers_{index}/", cfg)
        state.update({f"blocks.{index}.{name}": value for name, value in block.items()})
    return {name: value.contiguous() for name, value in state.items()}


class HeadLayout(NamedTuple):
    """What each query of a converted depth head predicts: outputs [prod(patch) * channels] in
    (t, y, x, channel) order."""

    patch: tuple[int, int, int]  # pixels (t, y, x)
    channels: int


def head_layout(
    ckpt: Checkpoint,
    cfg: ModelConfig,
    frames: int,
    size: int,
    output_patch: tuple[int, int, int] | None = None,
) -> HeadLayout:
    """The depth head's output patch and channels, read from its arrays.

    Its Q learned queries [Q, heads, head_dim] tile the frames x size x size clip, so each
    predicts frames * size^2 / Q pixels, and its output layer [W, O] gives O / that channels
    per pixel. The patch is the (t, s, s) of that many pixels that divides the clip; where
    several do, the one as long in time as the tubelet (the released head: 2x8x8 on 2x16x16
    tubelets); `output_patch` (any (t, y, x) of that many pixels) decides instead.

    Raises:
        ConvertError: the queries or outputs do not tile the clip, no patch fits, or several
            do and none is as long as the tubelet (then name one with `output_patch`).
    """
    queries, _, _ = ckpt.shape(READOUT_PREFIX + "query", rank=3)
    _, outputs = ckpt.shape(READOUT_PREFIX + "Dense_1/kernel", rank=2)
    clip = f"{frames}x{size}x{size}"
    pixels, rest = divmod(frames * size * size, queries)
    if rest:
        raise ConvertError(f"{ckpt.path}: {queries} depth queries do not tile {clip} clips")
    channels, rest = divmod(outputs, pixels)
    if rest or not channels:
        raise ConvertError(
            f"{ckpt.path}: a depth head of {outputs} outputs per query is not a whole number of "
            f"channels for its {pixels}-pixel patches of {clip} clips"
        )
    shape = (frames, size, size)

    def fits(patch: tuple[int, int, int]) -> bool:
        divides = all(n % k == 0 for n, k in zip(shape, patch, strict=True))
        return math.prod(patch) == pixels and divides

    if output_patch is not None:
        if not fits(output_patch):
            raise ConvertError(
                f"{ckpt.path}: output patch {_shape(output_patch)} does not fit the depth head: "
                f"its {queries} queries tile {clip} clips in {pixels}-pixel patches"
            )
        return HeadLayout(tuple(output_patch), channels)
    fitting = [(t, s, s) for t in range(1, frames + 1) for s in range(1, size + 1)]
    fitting = [patch for patch in fitting if fits(patch)]
    if len(fitting) > 1:
        fitting = [patch for patch in fitting if patch[0] == cfg.tubelet[0]] or fitting
    if len(fitting) != 1:
        found = f"could be {' or '.join(map(_shape, fitting))}" if fitting else "are not t x s x s"
        raise ConvertError(
            f"{ckpt.path}: the depth head's {pixels}-pixel patches of {clip} clips {found}: "
            "name one with --output-patch"
        )
    return HeadLayout(fitting[0], channels)


def _shape(patch: tuple[int, ...]) -> str:
    return "x".join(map(str, patch))


def readout_args(
    ckpt: Checkpoint, cfg: ModelConfig, frames: int, size: int, layout: HeadLayout
) -> dict:
    """`AttentionReadout` constructor arguments of the official depth readout: one query per
    output patch of `layout`, width and heads from the learned queries [Q, heads, head_dim]."""
    queries, heads, head_dim = ckpt.shape(READOUT_PREFIX + "query", rank=3)
    return {
        "feature_dim": cfg.width,
        "grid": [frames // cfg.tubelet[0], size // cfg.tubelet[1], size // cfg.tubelet[2]],
        "frames": frames,
        "width": heads * head_dim,
        "heads": heads,
        "num_queries": queries,
        "query_dim": 0,
        "out_dim": math.prod(layout.patch) * layout.channels,
        "convention": CONVENTION,
    }


def readout_state(ckpt: Checkpoint, args: dict) -> StateDict:
    """The readout under `params/layers_2/` -> `AttentionReadout` state dict.

    The official readout attends with its learned queries directly (no query projection), so
    `cross_attn.q` becomes the identity; its queries [Q, heads, head_dim] flatten to [1, Q, W].
    """
    r, dim, width, frames = READOUT_PREFIX, args["feature_dim"], args["width"], args["frames"]
    heads_shape = (args["heads"], width // args["heads"])
    queries = args["num_queries"]
    temporal = ckpt.tensor(r + "temporal_posenc/embeddings", (frames, 1, dim))

    def embedding(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        kernel = ckpt.tensor(f"{r}{name}_embedding/kernel", (dim, *heads_shape))
        return dense(kernel), ckpt.tensor(f"{r}{name}_embedding/bias", heads_shape).flatten()

    (k, k_bias), (v, v_bias) = embedding("key"), embedding("value")
    state = {
        "feature_norm.weight": ckpt.tensor(r + "LayerNorm_0/scale", (dim,)),
        "feature_norm.bias": ckpt.tensor(r + "LayerNorm_0/bias", (dim,)),
        "temporal_embed": temporal.reshape(1, frames, 1, dim),
        "queries": ckpt.tensor(r + "query", (queries, *heads_shape)).reshape(1, queries, width),
        "cross_attn.q.weight": torch.eye(width),
        "cross_attn.q.bias": torch.zeros(width),
        "cross_attn.kv.weight": torch.cat([k, v]),
        "cross_attn.kv.bias": torch.cat([k_bias, v_bias]),
        "cross_attn.proj.weight": dense(ckpt.tensor(r + "Dense_0/kernel", (width, width))),
        "cross_attn.proj.bias": ckpt.tensor(r + "Dense_0/bias", (width,)),
        "norm.weight": ckpt.tensor(r + "LayerNorm_1/scale", (width,)),
        "norm.bias": ckpt.tensor(r + "LayerNorm_1/bias", (width,)),
        "mlp.0.weight": dense(ckpt.tensor(r + "MLP_0/Dense_0/kernel", (width, 4 * width))),
        "mlp.0.bias": ckpt.tensor(r + "MLP_0/Dense_0/bias", (4 * width,)),
        "mlp.2.weight": dense(ckpt.tensor(r + "MLP_0/Dense_1/kernel", (4 * width, width))),
        "mlp.2.bias": ckpt.tensor(r + "MLP_0/Dense_1/bias", (width,)),
        "head.weight": dense(ckpt.tensor(r + "Dense_1/kernel", (width, args["out_dim"]))),
        "head.bias": ckpt.tensor(r + "Dense_1/bias", (args["out_dim"],)),
    }
    return {name: value.contiguous() for name, value in state.items()}


@dataclasses.dataclass(frozen=True)
class Converted:
    """What `convert` wrote."""

    encoder: Path
    readout: Path | None  # None: the checkpoint has no readout
    model: ModelConfig
    frames: int
    size: int
    ignored: tuple[str, ...]  # keys outside the backbone and the readout, left as they were


class LoadedReadout(NamedTuple):
    """A converted readout and how to read its outputs [B, Q, prod(layout.patch) * channels]."""

    module: AttentionReadout
    depth_output: str  # "linear": outputs are depth itself, not log-depth
    layout: HeadLayout  # each query's pixels (t, y, x) and channels per pixel


def readout_path(out: str | Path) -> Path:
    """The readout file written beside the encoder weights `out`: `<stem>-readout.pt`."""
    out = Path(out)
    return out.with_name(f"{out.stem}-readout.pt")


def convert(
    npz: str | Path, out: str | Path, output_patch: tuple[int, int, int] | None = None
) -> Converted:
    """Convert an official 4DS `.npz` into encoder weights at `out` (and its readout, if any;
    `output_patch` names its patch where the arrays leave it open, see `head_layout`).

    Every array is checked before anything is written; both files are written atomically.

    Raises:
        OutputError: `out` or its readout sibling is `npz`, a folder, or a file fourds did not
            write.
    """
    for path in (out, readout_path(out)):
        check_weights_output(path, (npz,))
    ckpt = open_checkpoint(npz)
    with ckpt.arrays:
        prefix = backbone_prefix(ckpt)
        cfg, frames, size = model_config(ckpt, prefix)
        converted = [prefix + "encoder/", prefix + "processor/"]
        encoder = encoder_state(ckpt, prefix, cfg, frames, size)
        readout = None
        if any(key.startswith(READOUT_PREFIX) for key in ckpt.keys):
            layout = head_layout(ckpt, cfg, frames, size, output_patch)
            args = readout_args(ckpt, cfg, frames, size, layout)
            readout = args, readout_state(ckpt, args), layout
            converted.append(READOUT_PREFIX)
    unknown = [key for part in converted for key in ckpt.unused(part)]
    if unknown:
        raise ConvertError(f"{ckpt.path}: unexpected keys {unknown}: not a 4DS layout")
    source = ckpt.path.name
    save_encoder(out, encoder, cfg, frames, size, source)
    written = None
    if readout is not None:
        written = readout_path(out)
        save_readout(written, *readout, source)
    ignored = tuple(sorted(ckpt.keys - ckpt.used))
    return Converted(Path(out), written, cfg, frames, size, ignored)


def save_encoder(
    path: str | Path, state: StateDict, cfg: ModelConfig, frames: int, size: int, source: str
) -> None:
    """Write a `VideoViT` state dict as a fourds weights file for `load_encoder`, atomically:
    encoder keys only and no MAE config (the official checkpoints carry no decoder), marked as
    the official model's, to be loaded with its numerics."""
    encoder = {f"encoder.{name}": value for name, value in state.items()}
    save_mae(
        path, encoder, cfg, None, frames, size, source=source, origin=ORIGIN, convention=CONVENTION
    )


def save_readout(
    path: str | Path, args: dict, state: StateDict, layout: HeadLayout, source: str
) -> None:
    """Write a depth readout (constructor args, state dict, output convention), atomically."""
    payload = {
        "format": READOUT_FORMAT,
        "task": "depth",
        "depth_output": "linear",
        "output_patch": list(layout.patch),
        "channels": layout.channels,
        "args": args,
        "state_dict": state,
        "source": source,
        "origin": ORIGIN,
    }
    write_payload(path, payload)


def load_readout(path: str | Path, backend: str = "sdpa") -> LoadedReadout:
    """Rebuild a converted readout, in eval mode with frozen parameters."""
    payload = read_payload(
        path,
        READOUT_FORMAT,
        "readout",
        "run `fourds convert` on a release with a readout (scaling4d_dist_b_depth.npz: "
        "docs/official-checkpoints.md)",
    )
    args = {**payload["args"], "grid": tuple(payload["args"]["grid"])}
    readout = AttentionReadout(**args, backend=backend)
    readout.load_state_dict(payload["state_dict"])
    readout.requires_grad_(False)
    layout = HeadLayout(tuple(payload["output_patch"]), payload.get("channels", 1))
    return LoadedReadout(readout.eval(), payload["depth_output"], layout)
