"""`fourds convert`: every official 4DS array lands where the Flax model uses it.

A small checkpoint with the official key layout and distinct random values is converted, and
the converted modules are compared with a numpy forward pass written from the official Flax
code: VALID Conv tubelets plus a learned (T', h, w) position embedding, pre-LayerNorm blocks
with DenseGeneral projections, and the depth readout whose learned queries attend directly,
on features resized in time with JAX's cubic kernel before its LayerNorm. Converted weights
load with the official numerics (tanh GELU, resize then LayerNorm), so the reference with
Flax's default tanh GELU must match to float32 precision: within 1e-5 relative end to end.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fourds.cli import main
from fourds.config import ModelConfig
from fourds.evaluate.metrics import DepthProtocol
from fourds.evaluate.readout import clip_geometry, converted_readout
from fourds.models.convert import (
    ConvertError,
    convert,
    head_layout,
    load_readout,
    open_checkpoint,
    readout_path,
)
from fourds.models.mae import unpatchify
from fourds.models.readout import readout_block_count
from fourds.models.vit import VideoViT, count_parameters
from fourds.models.weights import WeightsError, load_encoder

WIDTH, DEPTH, HEADS, MLP_DIM = 32, 3, 4, 64
TUBELET, FRAMES, SIZE = (2, 8, 8), 4, 16
# the architecture the converter reads from these arrays (the flags are not the released ones')
OFFICIAL_SMALL = ModelConfig(WIDTH, DEPTH, HEADS, MLP_DIM, TUBELET, False, False, True)
GRID = (FRAMES // 2, SIZE // 8, SIZE // 8)  # the token grid (T', h, w)
READOUT_WIDTH, READOUT_HEADS = 16, 4
QUERIES, OUT_DIM = (FRAMES // 2) * (SIZE // 8) ** 2, 2 * 8 * 8  # one query per 2x8x8 patch
FULL, BACKBONE_ONLY, READOUT = "params/layers_0/", "params/", "params/layers_2/"
EXACT = dict(rtol=1e-4, atol=5e-5)  # float32 against the float64 reference
PARITY = 1e-5  # end to end: max |ours - official| / max |official|


def backbone_shapes(prefix: str) -> dict[str, tuple[int, ...]]:
    """The official backbone arrays of the small model, as `params/.../` keys."""
    hd = WIDTH // HEADS
    shapes = {
        "encoder/patch_embedding/Conv_0/kernel": (*TUBELET, 3, WIDTH),
        "encoder/patch_embedding/Conv_0/bias": (WIDTH,),
        "encoder/posenc/embeddings": (*GRID, WIDTH),
    }
    for i in range(DEPTH):
        block = f"processor/layers_{i}/"
        for norm in ("attention_norm", "mlp_norm"):
            shapes |= {f"{block}{norm}/scale": (WIDTH,), f"{block}{norm}/bias": (WIDTH,)}
        for name in ("query", "key", "value"):
            shapes[f"{block}attention/{name}/kernel"] = (WIDTH, HEADS, hd)
            shapes[f"{block}attention/{name}/bias"] = (HEADS, hd)
        shapes[f"{block}attention/out/kernel"] = (HEADS, hd, WIDTH)
        shapes[f"{block}attention/out/bias"] = (WIDTH,)
        shapes[f"{block}mlp/dense_in/kernel"] = (WIDTH, MLP_DIM)
        shapes[f"{block}mlp/dense_in/bias"] = (MLP_DIM,)
        shapes[f"{block}mlp/dense_out/kernel"] = (MLP_DIM, WIDTH)
        shapes[f"{block}mlp/dense_out/bias"] = (WIDTH,)
    return {prefix + key: shape for key, shape in shapes.items()}


def readout_shapes(queries: int = QUERIES, out_dim: int = OUT_DIM) -> dict[str, tuple[int, ...]]:
    """The official depth readout arrays of the small model, with `queries` learned queries
    and `out_dim` outputs each."""
    heads_shape, width = (READOUT_HEADS, READOUT_WIDTH // READOUT_HEADS), READOUT_WIDTH
    shapes = {
        "LayerNorm_0/scale": (WIDTH,),
        "LayerNorm_0/bias": (WIDTH,),
        "temporal_posenc/embeddings": (FRAMES, 1, WIDTH),
        "query": (queries, *heads_shape),
        "key_embedding/kernel": (WIDTH, *heads_shape),
        "key_embedding/bias": heads_shape,
        "value_embedding/kernel": (WIDTH, *heads_shape),
        "value_embedding/bias": heads_shape,
        "Dense_0/kernel": (width, width),
        "Dense_0/bias": (width,),
        "LayerNorm_1/scale": (width,),
        "LayerNorm_1/bias": (width,),
        "MLP_0/Dense_0/kernel": (width, 4 * width),
        "MLP_0/Dense_0/bias": (4 * width,),
        "MLP_0/Dense_1/kernel": (4 * width, width),
        "MLP_0/Dense_1/bias": (width,),
        "Dense_1/kernel": (width, out_dim),
        "Dense_1/bias": (out_dim,),
    }
    return {READOUT + key: shape for key, shape in shapes.items()}


def random_arrays(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Distinct random float32 values; LayerNorm scales around 1."""
    rng = np.random.default_rng(seed)
    return {
        key: (rng.normal(0.0, 0.3, shape) + key.endswith("/scale")).astype(np.float32)
        for key, shape in shapes.items()
    }


def write_npz(path, arrays: dict[str, np.ndarray]):
    np.savez(path, **arrays)
    return path


def full_arrays(queries: int = QUERIES, out_dim: int = OUT_DIM) -> dict[str, np.ndarray]:
    """A full depth model's arrays: the backbone and a readout of `readout_shapes`."""
    return random_arrays(backbone_shapes(FULL) | readout_shapes(queries, out_dim))


def relative(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays under `prefix`, keyed relative to it, in float64."""
    return {k[len(prefix) :]: v.astype(float) for k, v in arrays.items() if k.startswith(prefix)}


# The official forward pass, in numpy (float64), from the Flax modules.


def layer_norm(x, scale, bias):
    """Flax's nn.LayerNorm: the variance in one pass, max(0, E[x^2] - E[x]^2)."""
    mean = x.mean(-1, keepdims=True)
    var = np.maximum(0.0, (x * x).mean(-1, keepdims=True) - mean * mean)
    return (x - mean) * (1.0 / np.sqrt(var + 1e-6) * scale) + bias


def gelu(x, approximate: bool):
    """Flax nn.gelu: the tanh approximation by default; exact erf when not `approximate`."""
    if approximate:
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def dense(x, kernel, bias, axes: int = 1):
    """Flax DenseGeneral: contract the last `axes` dims of x with the first of the kernel."""
    return np.tensordot(x, kernel, axes=axes) + bias


def dot_product_attention(q, k, v):
    """q [B, Q, H, hd], k and v [B, K, H, hd] -> [B, Q, H, hd]."""
    logits = np.einsum("bqhd,bkhd->bhqk", q / math.sqrt(q.shape[-1]), k)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.einsum("bhqk,bkhd->bqhd", weights, v)


def official_tokens(video, p):
    """video [B, T, H, W, 3] -> tokens [B, T'*h*w, D]: VALID strided Conv, + posenc, flatten."""
    batch = video.shape[0]
    (t, ph, pw), (gt, gh, gw) = TUBELET, GRID
    patches = video.reshape(batch, gt, t, gh, ph, gw, pw, 3)
    conv = "encoder/patch_embedding/Conv_0/"
    tokens = np.einsum("bTtHpWqc,tpqcd->bTHWd", patches, p[conv + "kernel"]) + p[conv + "bias"]
    tokens = tokens + p["encoder/posenc/embeddings"]
    return tokens.reshape(batch, gt * gh * gw, WIDTH)


def official_block(x, p, approximate: bool):
    """PreNormBlock: x + attention(LN(x)), then + MLP(LN(.)); `p` keys are relative to it."""
    y = layer_norm(x, p["attention_norm/scale"], p["attention_norm/bias"])
    q, k, v = (
        dense(y, p[f"attention/{name}/kernel"], p[f"attention/{name}/bias"])
        for name in ("query", "key", "value")
    )
    mixed = dot_product_attention(q, k, v)
    x = x + dense(mixed, p["attention/out/kernel"], p["attention/out/bias"], axes=2)
    y = layer_norm(x, p["mlp_norm/scale"], p["mlp_norm/bias"])
    hidden = gelu(dense(y, p["mlp/dense_in/kernel"], p["mlp/dense_in/bias"]), approximate)
    return x + dense(hidden, p["mlp/dense_out/kernel"], p["mlp/dense_out/bias"])


def official_readout_features(video, p, approximate: bool, readout_depth: float = 0.95):
    """GeneralizedTransformer's list (the tokens, then each block's input), read as
    EncoderToReadout does: entry int(len * readout_depth) - 1."""
    x = official_tokens(video, p)
    features = [x]
    for i in range(DEPTH):
        features.append(x)
        x = official_block(x, relative(p, f"processor/layers_{i}/"), approximate)
    return features[int(len(features) * readout_depth) - 1]


def keys_cubic(x):
    """Keys' cubic kernel with a = -0.5, as jax.image.resize's "cubic"."""
    x = np.abs(x)
    near = (1.5 * x - 2.5) * x * x + 1
    far = ((-0.5 * x + 2.5) * x - 4) * x + 2
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def jax_resize_time(features, frames: int):
    """jax.image.resize(features, (B, frames, N, D), "cubic") for an upsample in time: sample
    (t + 0.5) * T' / T - 0.5 of the input, weights over the input samples summing to 1."""
    steps = features.shape[1]
    weights = np.zeros((frames, steps))
    for t in range(frames):
        centre = (t + 0.5) * steps / frames - 0.5
        row = np.array([keys_cubic(centre - s) for s in range(steps)])
        weights[t] = row / row.sum()
    return np.einsum("ts,bsnd->btnd", weights, features)


def official_readout(features, p, approximate: bool):
    """AttentionReadout on features [B, T'*h*w, D]: resized in time to T frames with JAX's
    cubic, then LayerNorm -> [B, Q, out_dim]."""
    batch = features.shape[0]
    features = jax_resize_time(features.reshape(batch, GRID[0], -1, WIDTH), FRAMES)
    x = layer_norm(features, p["LayerNorm_0/scale"], p["LayerNorm_0/bias"])
    x = (x + p["temporal_posenc/embeddings"]).reshape(batch, -1, WIDTH)
    key = dense(x, p["key_embedding/kernel"], p["key_embedding/bias"])
    value = dense(x, p["value_embedding/kernel"], p["value_embedding/bias"])
    query = np.broadcast_to(p["query"], (batch, *p["query"].shape))
    queries = query.shape[1]
    token = dot_product_attention(query, key, value).reshape(batch, queries, -1)
    token = query.reshape(batch, queries, -1) + dense(token, p["Dense_0/kernel"], p["Dense_0/bias"])
    y = layer_norm(token, p["LayerNorm_1/scale"], p["LayerNorm_1/bias"])
    y = gelu(dense(y, p["MLP_0/Dense_0/kernel"], p["MLP_0/Dense_0/bias"]), approximate)
    token = token + dense(y, p["MLP_0/Dense_1/kernel"], p["MLP_0/Dense_1/bias"])
    return dense(token, p["Dense_1/kernel"], p["Dense_1/bias"])


def as_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().numpy()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(official arrays, conversion result) of the small full depth model."""
    root = tmp_path_factory.mktemp("convert")
    arrays = full_arrays()
    return arrays, convert(write_npz(root / "depth.npz", arrays), root / "encoder.pt")


def test_conversion_reads_the_architecture_from_the_shapes(converted):
    arrays, result = converted
    cfg = result.model
    assert (cfg.width, cfg.depth, cfg.heads, cfg.mlp_dim, cfg.tubelet) == (32, 3, 4, 64, TUBELET)
    assert (result.frames, result.size) == (FRAMES, SIZE)
    assert result.readout == readout_path(result.encoder) and result.ignored == ()
    encoder = load_encoder(result.encoder)
    backbone_values = sum(a.size for k, a in arrays.items() if k.startswith(FULL))
    assert count_parameters(encoder) == backbone_values  # every array used, nothing invented


def test_tubelet_and_position_embedding_match_the_flax_conv(converted):
    arrays, result = converted
    video = np.random.default_rng(1).random((2, FRAMES, SIZE, SIZE, 3))
    ours = load_encoder(result.encoder).tokens(torch.tensor(video, dtype=torch.float32))
    expected = official_tokens(video, relative(arrays, FULL))
    np.testing.assert_allclose(as_numpy(ours), expected, **EXACT)


def relative_error(ours: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(ours - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize("index", range(DEPTH))
def test_each_block_matches_the_official_block(converted, index):
    arrays, result = converted
    block = load_encoder(result.encoder, backend="math").blocks[index]
    x = np.random.default_rng(index).normal(size=(2, math.prod(GRID), WIDTH))
    ours = as_numpy(block(torch.tensor(x, dtype=torch.float32)))
    p = relative(arrays, f"{FULL}processor/layers_{index}/")
    np.testing.assert_allclose(ours, official_block(x, p, approximate=True), **EXACT)


def test_encoder_matches_the_official_features_at_readout_depth(converted):
    arrays, result = converted
    video = np.random.default_rng(2).random((2, FRAMES, SIZE, SIZE, 3))
    blocks = readout_block_count(DEPTH, 0.95)
    ours = load_encoder(result.encoder)(torch.tensor(video, dtype=torch.float32), num_blocks=blocks)
    expected = official_readout_features(video, relative(arrays, FULL), approximate=True)
    np.testing.assert_allclose(as_numpy(ours), expected, **EXACT)
    assert relative_error(as_numpy(ours), expected) <= PARITY


@pytest.mark.parametrize("readout_depth", [0.05, 0.3, 0.5, 0.95, 1.0])
def test_the_encoder_reads_the_features_the_official_code_reads(converted, readout_depth):
    """Every kind of entry of the official list (4 entries at depth 3): -1 (wrapping to the
    last, 2 blocks), 0 and 1 (the token embedding), 2 and 3 (1 and 2 blocks)."""
    arrays, result = converted
    video = np.random.default_rng(5).random((2, FRAMES, SIZE, SIZE, 3))
    encoder = load_encoder(result.encoder)
    blocks = readout_block_count(DEPTH, readout_depth, encoder.convention)
    ours = encoder(torch.tensor(video, dtype=torch.float32), num_blocks=blocks)
    p = relative(arrays, FULL)
    expected = official_readout_features(video, p, approximate=True, readout_depth=readout_depth)
    assert relative_error(as_numpy(ours), expected) <= PARITY


def test_converted_files_record_the_official_origin_and_numerics(converted):
    _, result = converted
    payload = torch.load(result.encoder, weights_only=True)
    assert payload["convention"] == "official" and "official 4DS" in payload["origin"]
    assert load_encoder(result.encoder).convention == "official"
    readout = torch.load(result.readout, weights_only=True)
    assert readout["args"]["convention"] == "official" and "official 4DS" in readout["origin"]


def test_the_model_matches_the_official_depth_end_to_end(converted):
    """Video -> encoder -> readout, features varying in time (where the order of resize and
    LayerNorm and the cubic kernel matter): within 1e-5 relative of the official model."""
    arrays, result = converted
    video = np.random.default_rng(4).random((2, FRAMES, SIZE, SIZE, 3))
    encoder, readout = load_encoder(result.encoder), load_readout(result.readout).module
    blocks = readout_block_count(DEPTH, 0.95)
    with torch.no_grad():
        ours = readout(encoder(torch.tensor(video, dtype=torch.float32), num_blocks=blocks))
    features = official_readout_features(video, relative(arrays, FULL), approximate=True)
    expected = official_readout(features, relative(arrays, READOUT), approximate=True)
    assert relative_error(as_numpy(ours), expected) <= PARITY
    # what the fourds convention (LayerNorm, then torch's bicubic; erf GELU) would give is
    # measurably off: the reason converted weights switch
    fourds = load_readout(result.readout).module
    fourds.convention, fourds.mlp[1].approximate = "fourds", "none"
    with torch.no_grad():
        other = fourds(encoder(torch.tensor(video, dtype=torch.float32), num_blocks=blocks))
    assert relative_error(as_numpy(other), expected) > 10 * PARITY


def test_jax_cubic_resize_matrix_by_hand():
    from fourds.models.readout import cubic_resize_matrix

    weights = cubic_resize_matrix(2, 4).numpy()
    # output 0 samples input position -0.25: taps at distances 0.25 and 1.25 (the tap at -1
    # is outside the input, and the two left are renormalised)
    near, far = keys_cubic(0.25), keys_cubic(1.25)
    np.testing.assert_allclose(weights[0], [near / (near + far), far / (near + far)])
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(weights, weights[::-1, ::-1])  # symmetric about the centre


def test_readout_matches_the_official_readout(converted):
    """The whole readout on given features; the official one has no query projection, so ours
    is the identity."""
    arrays, result = converted
    loaded = load_readout(result.readout)
    readout = loaded.module
    assert (loaded.depth_output, loaded.layout) == ("linear", ((2, 8, 8), 1))
    torch.testing.assert_close(readout.cross_attn.q.weight, torch.eye(READOUT_WIDTH))
    temporal = arrays[f"{READOUT}temporal_posenc/embeddings"]  # [T, 1, D]: time order kept
    np.testing.assert_array_equal(readout.temporal_embed.numpy(), temporal[None])
    assert torch.all(readout.cross_attn.q.bias == 0)
    readout_values = sum(a.size for k, a in arrays.items() if k.startswith(READOUT))
    assert count_parameters(readout) == readout_values + READOUT_WIDTH**2 + READOUT_WIDTH

    features = np.random.default_rng(3).normal(size=(2, math.prod(GRID), WIDTH))
    ours = as_numpy(readout(torch.tensor(features, dtype=torch.float32)))
    p = relative(arrays, READOUT)
    assert ours.shape == (2, QUERIES, OUT_DIM)
    np.testing.assert_allclose(ours, official_readout(features, p, approximate=True), **EXACT)


def official_output_map(outputs: np.ndarray, patch, channels: int) -> np.ndarray:
    """The official readout's rearrange of outputs [B, Q, prod(patch) * channels] into
    [B, T, H, W, channels]: queries in raster order over the clip's patch grid, each query's
    outputs in (t, y, x, channel) order."""
    batch, (pt, py, px) = outputs.shape[0], patch
    gt, gh, gw = FRAMES // pt, SIZE // py, SIZE // px
    maps = np.zeros((batch, FRAMES, SIZE, SIZE, channels))
    for query in range(gt * gh * gw):
        i, j, k = query // (gh * gw), query // gw % gh, query % gw
        block = outputs[:, query].reshape(batch, pt, py, px, channels)
        maps[:, pt * i : pt * (i + 1), py * j : py * (j + 1), px * k : px * (k + 1)] = block
    return maps


@pytest.mark.parametrize(
    ("patch", "channels", "output_patch"),
    [
        ((2, 4, 4), 1, None),
        ((2, 4, 4), 3, None),
        ((2, 16, 16), 1, None),
        ((1, 8, 8), 2, (1, 8, 8)),  # 1x8x8 or 4x4x4 by the arrays alone: named
    ],
)
def test_the_head_layout_is_read_from_the_checkpoint(tmp_path, patch, channels, output_patch):
    """A head of another patch and channel count than the released 2x8x8 x 1 converts to a
    readout that records them and matches the official readout, its outputs laid out as the
    official code lays them out."""
    queries = FRAMES * SIZE * SIZE // math.prod(patch)
    arrays = full_arrays(queries, math.prod(patch) * channels)
    result = convert(write_npz(tmp_path / "head.npz", arrays), tmp_path / "e.pt", output_patch)
    loaded = load_readout(result.readout)
    assert loaded.layout == (patch, channels)
    features = np.random.default_rng(6).normal(size=(2, math.prod(GRID), WIDTH))
    with torch.no_grad():
        ours = as_numpy(loaded.module(torch.tensor(features, dtype=torch.float32)))
    expected = official_readout(features, relative(arrays, READOUT), approximate=True)
    np.testing.assert_allclose(ours, expected, **EXACT)
    grid = (FRAMES // patch[0], SIZE // patch[1], SIZE // patch[2])
    np.testing.assert_allclose(
        unpatchify(torch.from_numpy(ours), patch, grid).numpy(),
        official_output_map(expected, patch, channels),
        **EXACT,
    )


def test_the_released_head_is_2x8x8_of_one_channel(tmp_path):
    """scaling4d_dist_b_depth.npz's head shapes: 6272 queries, 128 outputs, 16x224x224 clips
    on 2x16x16 tubelets: 2x8x8 and 8x4x4 patches would both tile the clip, and the one as long
    in time as the tubelet is taken."""
    head = {
        f"{READOUT}query": np.zeros((6272, 1, 1)),
        f"{READOUT}Dense_1/kernel": np.zeros((1, 128)),
    }
    ckpt = open_checkpoint(write_npz(tmp_path / "head.npz", head))
    cfg = ModelConfig(
        768, 12, 12, 3072, (2, 16, 16), qk_norm=False, parallel_blocks=False, bias=True
    )
    assert head_layout(ckpt, cfg, 16, 224) == ((2, 8, 8), 1)
    assert head_layout(ckpt, cfg, 16, 224, (8, 4, 4)) == ((8, 4, 4), 1)


@pytest.mark.parametrize(
    ("patch", "output_patch", "message"),
    [
        ((1, 8, 8), None, "64-pixel patches of 4x16x16 clips could be 1x8x8 or 4x4x4: name one"),
        ((2, 8, 8), (4, 4, 4), "output patch 4x4x4 does not fit the depth head: its 8 queries"),
        ((2, 8, 8), (3, 8, 8), "output patch 3x8x8 does not fit"),
    ],
)
def test_a_head_layout_the_arrays_leave_open_must_be_named(tmp_path, patch, output_patch, message):
    arrays = full_arrays(FRAMES * SIZE * SIZE // math.prod(patch), math.prod(patch))
    with pytest.raises(ConvertError, match=message):
        convert(write_npz(tmp_path / "head.npz", arrays), tmp_path / "e.pt", output_patch)
    assert not (tmp_path / "e.pt").exists()


def test_depth_scoring_refuses_a_converted_readout_that_does_not_fit(converted, tmp_path):
    _, result = converted
    protocol = DepthProtocol("none", "per_image", (0.001, 80.0))
    other_clips = VideoViT(result.model, 2 * FRAMES, SIZE, convention="official")
    with pytest.raises(WeightsError, match="does not fit this encoder's 8x16x16 clips"):
        converted_readout(result.readout, clip_geometry(other_clips), protocol, "sdpa")
    patch = (2, 4, 4)  # of 3 channels
    arrays = full_arrays(FRAMES * SIZE * SIZE // math.prod(patch), 3 * math.prod(patch))
    three = convert(write_npz(tmp_path / "head.npz", arrays), tmp_path / "encoder.pt")
    geometry = clip_geometry(load_encoder(three.encoder))
    with pytest.raises(WeightsError, match="predicts one channel per pixel, this one 3"):
        converted_readout(three.readout, geometry, protocol, "sdpa")


def test_a_backbone_only_checkpoint_converts_the_same_encoder(converted, tmp_path):
    """`params/encoder/...` as `params/layers_0/encoder/...`; other modules are left out."""
    arrays, result = converted
    backbone = {
        BACKBONE_ONLY + key[len(FULL) :]: value
        for key, value in arrays.items()
        if key.startswith(FULL)
    }
    decoder = {"params/decoder/Dense_0/kernel": np.ones((WIDTH, 8), np.float32)}
    npz = write_npz(tmp_path / "backbone.npz", backbone | decoder)
    only = convert(npz, tmp_path / "encoder.pt")
    assert only.readout is None and not readout_path(only.encoder).exists()
    assert only.ignored == ("params/decoder/Dense_0/kernel",)
    expected = load_encoder(result.encoder).state_dict()
    for name, value in load_encoder(only.encoder).state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0)


def with_changes(arrays, changes):
    return {k: v for k, v in (arrays | changes).items() if changes.get(k, ...) is not None}


KEY = f"{FULL}processor/layers_1/attention/key/kernel"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {KEY: np.zeros((WIDTH, HEADS, 9), np.float32)},
            f"{KEY}: expected shape (32, 4, 8), found (32, 4, 9)",
        ),
        ({KEY: None}, f"missing key '{KEY}'"),
        (
            {f"{READOUT}Dense_1/kernel": np.zeros((READOUT_WIDTH, 64), np.float32)},
            "a depth head of 64 outputs per query is not a whole number of channels for its "
            "128-pixel patches of 4x16x16 clips",
        ),
        (
            {f"{READOUT}Dense_1/bias": np.zeros(64, np.float32)},
            f"{READOUT}Dense_1/bias: expected shape (128,), found (64,)",
        ),
        (
            {f"{READOUT}query": np.zeros((7, READOUT_HEADS, 4), np.float32)},
            "7 depth queries do not tile 4x16x16 clips",
        ),
        (
            {f"{FULL}processor/layers_1/attention/query_norm/scale": np.ones(8, np.float32)},
            "unexpected keys ['params/layers_0/processor/layers_1/attention/query_norm/scale']",
        ),
        (
            {f"{FULL}encoder/posenc/embeddings": np.zeros((8, WIDTH), np.float32)},
            f"{FULL}encoder/posenc/embeddings: expected 4 dimensions, found (8, 32)",
        ),
        (
            {f"{FULL}encoder/patch_embedding/Conv_0/kernel": None},
            "no 4DS backbone: missing key 'params/layers_0/encoder/patch_embedding/Conv_0/kernel'",
        ),
    ],
)
def test_a_checkpoint_not_laid_out_as_expected_is_refused(tmp_path, changes, message):
    npz = write_npz(tmp_path / "bad.npz", with_changes(full_arrays(), changes))
    with pytest.raises(ConvertError) as caught:
        convert(npz, tmp_path / "encoder.pt")
    assert message in str(caught.value) and str(npz) in str(caught.value)
    assert not (tmp_path / "encoder.pt").exists()


def test_a_missing_or_foreign_file_is_refused(tmp_path):
    with pytest.raises(ConvertError, match="not found"):
        convert(tmp_path / "none.npz", tmp_path / "encoder.pt")
    (tmp_path / "text.npz").write_text("not numpy")
    with pytest.raises(ConvertError, match="not an .npz archive"):
        convert(tmp_path / "text.npz", tmp_path / "encoder.pt")
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(ConvertError, match="not an .npz archive"):
        convert(tmp_path / "array.npy", tmp_path / "encoder.pt")
    assert not (tmp_path / "encoder.pt").exists()


def test_cli_reports_what_it_wrote_and_exits_2_on_a_bad_checkpoint(tmp_path, capsys):
    npz = write_npz(tmp_path / "depth.npz", full_arrays())
    out = tmp_path / "weights" / "4ds.pt"
    assert main(["convert", "--npz", str(npz), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    params = sum(a.size for k, a in full_arrays().items() if k.startswith(FULL))
    assert f"{out}: encoder, {params:,} params" in printed
    assert f"{readout_path(out)}: depth readout" in printed and "linear depth per 2x8x8" in printed
    (tmp_path / "bad.npz").write_bytes(b"\x00" * 16)
    assert main(["convert", "--npz", str(tmp_path / "bad.npz"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("fourds convert: error: ")


def test_cli_names_an_output_patch_the_arrays_leave_open(tmp_path, capsys):
    arrays = full_arrays(FRAMES * SIZE * SIZE // 64, 2 * 64)  # 1x8x8 or 4x4x4, 2 channels
    npz, out = str(write_npz(tmp_path / "head.npz", arrays)), str(tmp_path / "4ds.pt")
    assert main(["convert", "--npz", npz, "--out", out]) == 2
    assert "could be 1x8x8 or 4x4x4: name one with --output-patch" in capsys.readouterr().err
    assert main(["convert", "--npz", npz, "--out", out, "--output-patch", "1x8x8"]) == 0
    assert "linear depth per 1x8x8 patch, 2 channels" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_status:
        main(["convert", "--npz", npz, "--out", out, "--output-patch", "1x8"])
    assert exit_status.value.code == 2 and "'1x8' is not TxHxW" in capsys.readouterr().err
