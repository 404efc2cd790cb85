"""Typed schema of `params.yaml`.

Every section is a frozen dataclass. `parse(cls, data, path)` turns a plain mapping into the
dataclass, checking that keys are known and that each value fits its field's annotation: a
`Literal[NAMES]` field takes one of the names in the tuple NAMES (the tuples below, which other
modules import too), an `Annotated[int, rule]` field a number that keeps the `Rule`, such as
`POSITIVE`. A class's `check(path)` then checks the rules that relate several fields. Every error
is a `ConfigError` whose message starts with the key path and the offending value, for example
`models.cpu_s.width=100 is not divisible by models.cpu_s.heads=3`.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fourds.errors import ConfigError

ATTENTION_BACKENDS = ("sdpa", "xformers", "math")
REGIMES = ("frozen", "finetuned", "random_init")
DEPTH_ALIGNMENTS = ("none", "median", "least_squares")
DEPTH_AVERAGINGS = ("per_image", "pooled")
POSE_PAIRS = ("first", "all")
DEPTH_LOSSES = ("log_l1", "abs_rel")
TRACKING_QUERIES = ("random", "first")
POSE_READOUTS = ("attention", "correlation")
TRACKING_READOUTS = ("attention", "motion")
DEVICES = ("cpu", "cuda", "auto")
MASK_TYPES = ("random", "tube")
DECODERS = ("mae_st", "queries")
RESIDUAL_INITS = ("xavier", "depth_scaled", "zero")
LR_SCALINGS = ("all", "hidden")
PRECISIONS = ("fp32", "bf16")
LAYOUTS = ("fsdp", "hsdp", "ddp")  # data-parallel layouts of a multi-process run
LAUNCHERS = ("local", "torchrun", "slurm")
CROPS = ("center", "stretch")
SHARD_FORMATS = ("npz", "webdataset")  # fourds.data.shards.FORMATS
VIDEO_LIST_FORMATS = ("ssv2", "kinetics")  # fourds.data.labelled: split files name the videos
VIDEO_FOLDER_FORMATS = (*VIDEO_LIST_FORMATS, "perception_test")  # read source.videos
FEATURE_EXTRACTORS = ("fourds", "inception")
# Decoding limits (CurateConfig): 8K video (7680x4320 = 33.2M pixels) fits.
MAX_FRAME_PIXELS = 36_000_000
MAX_QUEUED_MIB = 1024
MAX_DECODED_MIB = 96  # one source's frames (8192 at 64x64) and ground truth, decoded


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _ordered(config: Any, path: str, name: str) -> None:
    low, high = getattr(config, name)
    _require(low <= high, f"{path}.{name}={[low, high]} must be [low, high] with low <= high")


def _divisible(config: Any, path: str, name: str, by: str) -> None:
    value, divisor = getattr(config, name), getattr(config, by)
    _require(
        value % divisor == 0, f"{path}.{name}={value} is not divisible by {path}.{by}={divisor}"
    )


@dataclasses.dataclass(frozen=True)
class Rule:
    """A range a numeric field must lie in, declared on the field: `Annotated[int, POSITIVE]`.

    On a (t, h, w) tuple it applies to each entry, named by its axis (`tubelet[t]`).
    """

    holds: Callable[[Any], bool]
    text: str

    def check(self, value: Any, path: str) -> None:
        if isinstance(value, tuple):
            for axis, item in zip("thw", value, strict=True):
                self.check(item, f"{path}[{axis}]")
        else:
            _require(self.holds(value), f"{path}={value!r} {self.text}")


def at_least(low: int, hint: str = "") -> Rule:
    """`value >= low`; `hint` says what the bound itself means, e.g. "0: off"."""
    return Rule(lambda value: value >= low, f"must be >= {low}" + (f" ({hint})" if hint else ""))


POSITIVE = Rule(lambda value: value > 0, "must be positive")
FRACTION = Rule(lambda value: 0 <= value < 1, "must be in [0, 1)")
POSITIVE_FRACTION = Rule(lambda value: 0 < value <= 1, "must be in (0, 1]")
FOLDER_MD5 = Rule(
    lambda value: re.fullmatch(r"[0-9a-f]{32}\.dir", value) is not None,
    "must be DVC's md5 of a folder: 32 hex digits and .dir (the md5 of its .dvc file)",
)
PositiveInt = Annotated[int, POSITIVE]
PositiveFloat = Annotated[float, POSITIVE]
Extent = Annotated[tuple[int, int, int], POSITIVE]  # (time, height, width)
# (low, high) ranges; a class's check() says low <= high (see _ordered)
FractionRange = tuple[Annotated[float, POSITIVE_FRACTION], Annotated[float, POSITIVE_FRACTION]]
PositiveRange = tuple[PositiveFloat, PositiveFloat]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One encoder architecture of the ladder (a plain 4DS video ViT).

    qk_norm, parallel_blocks and bias=False are the ViT-22B recipe for the largest scales.
    """

    width: PositiveInt
    depth: PositiveInt
    heads: PositiveInt
    mlp_dim: PositiveInt
    tubelet: Extent
    qk_norm: bool
    parallel_blocks: bool
    bias: bool

    def check(self, path: str) -> None:
        _divisible(self, path, "width", "heads")


@dataclasses.dataclass(frozen=True)
class LadderConfig:
    """The scaling ladder: the model names to pretrain and evaluate, smallest first."""

    name: str
    scales: tuple[str, ...]

    def check(self, path: str) -> None:
        _require(len(self.scales) > 0, f"{path}.scales is empty: list at least one model")
        _require(
            len(set(self.scales)) == len(self.scales),
            f"{path}.scales={list(self.scales)} lists a model twice",
        )


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the stages compute."""

    device: Literal[DEVICES]
    attention: Literal[ATTENTION_BACKENDS]
    threads: Annotated[int, at_least(0, "0: default")]


@dataclasses.dataclass(frozen=True)
class LauncherConfig:
    """How the pretrain stage is started: in place, under torchrun, or as a Slurm job.

    nnodes x nproc_per_node processes in all. The Slurm fields (partition, account,
    gpus_per_node, cpus_per_task, mem_gb, time_minutes; 0 or "" for the cluster default) are
    read only by `kind: slurm`, rdzv_endpoint only by multi-node torchrun. requeues: how many
    times a Slurm job that reaches time_minutes requeues itself (the run resumes from its last
    checkpoint), so a stage may take up to (requeues + 1) x time_minutes.
    """

    kind: Literal[LAUNCHERS]
    nnodes: PositiveInt
    nproc_per_node: PositiveInt
    rdzv_endpoint: str
    partition: str
    account: str
    gpus_per_node: Annotated[int, at_least(0, "0: cluster default")]
    cpus_per_task: Annotated[int, at_least(0, "0: cluster default")]
    mem_gb: Annotated[int, at_least(0, "0: cluster default")]
    time_minutes: Annotated[int, at_least(0, "0: cluster default")]
    requeues: Annotated[int, at_least(0, "0: a job that reaches its limit ends")]

    def check(self, path: str) -> None:
        _require(
            not (self.kind == "torchrun" and self.nnodes > 1 and not self.rdzv_endpoint),
            f"{path}.rdzv_endpoint is empty: a {self.nnodes}-node torchrun needs host:port",
        )
        _require(
            not (self.kind == "slurm" and self.time_minutes == 0),
            f"{path}.time_minutes=0: a Slurm job needs a time limit",
        )


@dataclasses.dataclass(frozen=True)
class CurateConfig:
    """How raw videos are cut into readout clips and pretraining segments.

    The readout splits hold fixed clips of clip_frames frames, every frame_stride-th one; the
    pretrain split holds segments of pretrain_frames consecutive frames, from which pretraining
    samples its windows and crops (see PretrainConfig). fps resamples every source to that frame
    rate by timestamps (0: keep every decoded frame); crop is "center" (shorter side to
    `resolution`, centre crop) or "stretch".

    Decoding limits (a small file can declare huge frames, or expand to gigabytes): a source
    whose frames have more than max_frame_pixels pixels is rejected before decoding; decoded
    frames waiting for conversion hold at most max_queued_mib MiB. The defaults fit 8K video
    (7680x4320 = 33.2M pixels). One source, decoded, takes at most max_decoded_mib MiB: its
    frames at `resolution` and `fps` (T x resolution^2 x 3 bytes: 8,192 frames at 64 px, 668 at
    224 px) and its ground-truth sidecar (its arrays as their headers declare them, plus the
    depth and instance maps again at `resolution`). A source whose frames would take more (a long
    video of tiny frames, or a timestamp gap resampling fills with repeated frames) is rejected
    at the first frame past it, one whose sidecar would not fit beside its frames before any of
    the sidecar's arrays is loaded.

    data: the folder of raw videos curated (`data/<split>/...`; the embedded corpus by default),
        a path relative to the repository or absolute: `dvc exp run -S curate.data=<folder>`
        curates a user's own videos through the same stage and lineage.
    pinned_data: folder (as `data` names it: relative to the repository, params.yaml's folder,
        or absolute) -> DVC's md5 of its content (the md5 of its .dvc file). The stage refuses
        a pinned folder whose content is not the pinned one before it reads anything
        (fourds.data.pin), since `dvc repro` re-pins a .dvc file to whatever its folder holds.
        Folders it does not name are curated as they are.
    workers: processes that decode sources in parallel (0: decode in the main process); the
    output is byte-identical for any value.
    pretrain_format: the pretrain split's shard format, "npz" (np.savez files, for corpora on
    local disk) or "webdataset" (WebDataset tar shards, for large corpora and object stores);
    pretraining reads either through the shard index (fourds.data.segments), with the same
    batches. The readout splits are always npz.
    """

    clip_frames: PositiveInt
    frame_stride: PositiveInt
    pretrain_frames: PositiveInt
    resolution: PositiveInt
    clips_per_shard: PositiveInt
    fps: Annotated[float, at_least(0, "0: keep the source rate")]
    crop: Literal[CROPS]
    max_frame_pixels: PositiveInt = MAX_FRAME_PIXELS
    max_queued_mib: PositiveInt = MAX_QUEUED_MIB
    max_decoded_mib: PositiveInt = MAX_DECODED_MIB
    workers: Annotated[int, at_least(0, "0: decode in the main process")] = 0
    pretrain_format: Literal[SHARD_FORMATS] = "npz"
    data: str = "data"
    pinned_data: dict[str, Annotated[str, FOLDER_MD5]] = dataclasses.field(default_factory=dict)

    @property
    def span(self) -> int:
        """Number of source frames one clip covers."""
        return (self.clip_frames - 1) * self.frame_stride + 1


@dataclasses.dataclass(frozen=True)
class MAEConfig:
    """Masked auto-encoding: masking, the decoder and the pixel loss.

    `decoder` picks how masked content is predicted:
        mae_st   a light transformer decoder (decoder_width/depth/heads) over every tubelet,
                 scored on the masked ones (MAE-ST);
        queries  the 4DS decoding scheme: learned tokens, one per coarse patch of
                 query_stride x tubelet, join the visible tokens before the last query_blocks
                 encoder blocks and a linear layer decodes them to pixels (no decoder blocks).

    `residual_init` picks how the blocks' residual-output projections (attention output, the
    MLP's second layer) start:
        xavier        MAE-ST's xavier-uniform, like every other Linear;
        depth_scaled  GPT-2's rule: that bound times 1/sqrt(2 * depth), depth the number of blocks
                      in the stack (encoder or decoder), so a deeper stack's residual stream
                      starts no larger than a shallow one's;
        zero          zero: every block starts as the identity, whatever the stack's depth and
                      width (the encoder starts as its tubelet embedding).
    """

    mask_ratio: Annotated[float, FRACTION]
    mask_type: Literal[MASK_TYPES]
    norm_pix_loss: bool
    decoder: Literal[DECODERS]
    decoder_width: PositiveInt
    decoder_depth: PositiveInt
    decoder_heads: PositiveInt
    query_blocks: PositiveInt
    query_stride: Extent
    residual_init: Literal[RESIDUAL_INITS]

    def check(self, path: str) -> None:
        _divisible(self, path, "decoder_width", "decoder_heads")


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """The MAE pretraining run: how its examples are sampled, and its optimisation.

    Every example is sampled as MAE-ST samples it, from a random pretraining segment: a window of
    curate.clip_frames frames, every frame_stride-th one, at a random start; a random crop whose
    area is a fraction of the frame drawn uniformly from crop_scale and whose aspect ratio
    (width / height) is drawn log-uniformly from crop_aspect (clipped to what that area allows
    inside the frame), resized back to curate.resolution (bilinear); a horizontal flip with
    probability 1/2. crop_scale [1, 1] turns crops off.

    The peak learning rate is lr for encoders up to lr_reference_width wide and
    lr * lr_reference_width / width for wider ones (0: lr at every width). `lr_scaling` says
    which parameters that width rule applies to:
        all     every parameter;
        hidden  only the hidden matrices, whose input grows with the encoder's width (the
                encoder blocks' linear layers and the decoder's input projection; muP's rule,
                as Adam's update of a layer's output grows with its input width); the
                tubelet embedding, positional embeddings, norms, biases and the decoder's own
                blocks keep lr.

    data_parallel: the layout of a multi-process run, per scale (scales not named: fsdp):
        fsdp  every parameter sharded over all the processes (FSDP2);
        hsdp  sharded within a node (torchrun's LOCAL_WORLD_SIZE processes), replicated across
              nodes: all-gathers stay on NVLink, gradients cross nodes once, in shards;
        ddp   replicated on every process, gradients all-reduced (a small model whose FSDP
              traffic would outlast its compute; `fourds plan` says which to pick).
    A single-process run is the same under every layout.

    shards_url: where the pretrain shards are read from: "" for the stage's --curated folder,
    or a folder path or fsspec URL holding the same files (s3://bucket/shards, dvc://...,
    see fourds.data.segments); it does not change the batches.
    """

    frame_stride: PositiveInt
    crop_scale: FractionRange
    crop_aspect: PositiveRange
    steps: PositiveInt
    batch_size: PositiveInt
    lr: PositiveFloat
    lr_reference_width: Annotated[int, at_least(0, "0: the same lr at every width")]
    lr_scaling: Literal[LR_SCALINGS]
    weight_decay: Annotated[float, at_least(0)]
    warmup_steps: int
    grad_clip: Annotated[float, at_least(0, "0: off")]
    seed: int
    log_every: PositiveInt
    checkpoint_every: int
    keep_checkpoints: PositiveInt
    loader_workers: Annotated[int, at_least(0, "0: main thread")]
    prefetch: PositiveInt
    activation_checkpointing: bool | tuple[str, ...]
    data_parallel: dict[str, Literal[LAYOUTS]]
    precision: Literal[PRECISIONS]
    micro_batch: Annotated[int, at_least(0, "0: the whole per-process batch")]
    compile: bool
    shards_url: str = ""

    def checkpoints(self, scale: str) -> bool:
        """Whether activation checkpointing is on for `scale` (`activation_checkpointing`:
        true or false for every scale, or the list of scales that use it)."""
        if isinstance(self.activation_checkpointing, bool):
            return self.activation_checkpointing
        return scale in self.activation_checkpointing

    def layout(self, scale: str) -> str:
        """The data-parallel layout of `scale` (`data_parallel`; fsdp where not named)."""
        return self.data_parallel.get(scale, "fsdp")

    def check(self, path: str) -> None:
        _ordered(self, path, "crop_scale")
        _ordered(self, path, "crop_aspect")
        _require(
            self.checkpoint_every >= 0 and self.checkpoint_every % self.log_every == 0,
            f"{path}.checkpoint_every={self.checkpoint_every} must be 0 (off) or a multiple of "
            f"{path}.log_every={self.log_every}",
        )
        _require(
            0 <= self.warmup_steps < self.steps,
            f"{path}.warmup_steps={self.warmup_steps} must be in [0, {path}.steps={self.steps})",
        )
        _require(
            self.micro_batch == 0 or self.batch_size % self.micro_batch == 0,
            f"{path}.micro_batch={self.micro_batch} does not divide {path}.batch_size="
            f"{self.batch_size}",
        )


@dataclasses.dataclass(frozen=True)
class ReadoutConfig:
    """Settings shared by every readout stage.

    tasks: the readout tasks to run, rows of the task table (fourds.evaluate.tasks.TASKS, which
        checks the names).
    regimes: the regimes each (scale, task) readout runs in, one stage each: "frozen" trains only
        the readout on the encoder's features; "finetuned" also trains the encoder, at
        `finetune_lr_scale` times the readout's learning rate; "random_init" is the control:
        the scale's encoder as pretraining starts it (same architecture, same initialisation
        seed, no pretraining), with the readout trained exactly as for "frozen".
    cache_features: frozen and random_init stages run the encoder once per clip and train the
        readout on the stored features (the same result, much faster); false runs it every step.
        Fine-tuned stages always run it every step (their features change as the encoder trains).
    precision: the dtype a frozen encoder (frozen and random_init) holds its weights and
        computes in: "fp32", or "bf16" (half the memory: 4DS-j's 22B encoder in 41 GiB, one
        80 GB GPU). Its features reach the readout as fp32, and the readout trains in fp32.
        Fine-tuned stages keep an fp32 encoder (its weights train) whatever this says.
    depth_alignment: how depth predictions are aligned to the truth before scoring.
    depth_averaging: "per_image" averages each frame's depth metrics over frames (the published
        protocols); "pooled" pools every valid pixel of the test set.
    depth_range: [min, max] metres: ground truth outside (min, max) is not scored, predictions
        are clamped to [min, max] (fourds.evaluate.metrics.DepthProtocol).
    pose_pairs: "first" scores poses over the pairs (0, t); "all" over every pair i < j.
    start_at_baseline: a trained readout of a task with learned queries (depth, pose,
        classification) starts from its task's no-learning baseline (`Task.baseline`, taken
        from the training clips: for depth each pixel's mean log-depth) and learns the rest;
        false: from zero outputs. Tasks with given queries start at their baseline either way.
    depth_loss: what a trained depth readout minimises over valid pixels: "log_l1", L1 on
        log-depth; "abs_rel", the relative error |d - d*| / d* the headline scores, plus 0.1 x
        the L1 on log-depth.
    tracking_queries: the frame a tracking readout's training queries are taken at: "first",
        each point's first visible frame (as the headline's query mode scores it); "random",
        one of its visible frames at random.
    tracking_static: a point whose predicted displacement from its query point is below this
        fraction of the frame size is predicted to stay at the query point (0: never).
    pose_readout: the camera-pose readout: "attention", the 4DS attention readout of every task
        (fourds.models.readout); "correlation", local feature correlations between tubelets
        (fourds.models.pose_readout), which reads camera motion where the attention readout
        does not (docs/research/embedded-study.md).
    tracking_readout: the point-tracking readout: "attention", the 4DS attention readout;
        "motion", the attention readout plus each query point moved with the image's motion,
        an affine map per frame read from the same correlations (fourds.models.
        tracking_readout), with a visibility term for points that leave the frame.
    max_host_mib: the host memory (MiB) one split's decoded benchmark clips, and one split's
        cached features, may each take; past it they are written to a scratch folder beside the
        stage's output and read memory-mapped (fourds.data.spill), with the same results, so a
        benchmark of any size (SSv2's 169k training videos) runs in bounded memory; 0: always
        on disk.
    """

    tasks: tuple[str, ...]
    readout_depth: Annotated[float, POSITIVE_FRACTION]
    regimes: tuple[Literal[REGIMES], ...]
    finetune_lr_scale: PositiveFloat
    cache_features: bool
    precision: Literal[PRECISIONS]
    depth_alignment: Literal[DEPTH_ALIGNMENTS]
    depth_averaging: Literal[DEPTH_AVERAGINGS]
    depth_range: PositiveRange
    pose_pairs: Literal[POSE_PAIRS]
    seed: int
    start_at_baseline: bool = True
    depth_loss: Literal[DEPTH_LOSSES] = "abs_rel"
    tracking_queries: Literal[TRACKING_QUERIES] = "first"
    tracking_static: Annotated[float, FRACTION] = 0.1
    pose_readout: Literal[POSE_READOUTS] = "attention"
    tracking_readout: Literal[TRACKING_READOUTS] = "attention"
    max_host_mib: Annotated[int, at_least(0, "0: always on disk")] = 4096

    def check(self, path: str) -> None:
        _require(bool(self.regimes), f"{path}.regimes is empty: name at least one regime")
        _require(
            len(set(self.regimes)) == len(self.regimes),
            f"{path}.regimes={list(self.regimes)} names a regime twice",
        )
        low, high = self.depth_range
        _require(low < high, f"{path}.depth_range={[low, high]} must be [min, max] with min < max")


@dataclasses.dataclass(frozen=True)
class SourceConfig:
    """Where a readout's train and test clips come from.

    format: "synthetic" reads the curated corpus's readout-train and readout-test shards (train
        and test stay empty); the others read a public benchmark format, cut into clips of the
        encoder's input size (see fourds.data.benchmarks for each layout):
        tapvid         train and test are TAP-Vid pickles, or folders of them (Kinetics);
        scannet        folders of exported ScanNet scenes;
        realestate10k  folders of camera files, each beside its video (same stem);
        box_tracks     folders of box-track files (.json or .csv), each beside its video;
        perception_test
                       Perception Test annotation files (all_train.json, all_valid.json),
                       with the folder of their videos in `videos`;
        waymo_open     Waymo Open v2 split folders (training/, validation/) holding their
                       camera_image/ and camera_box/ parquet files;
        ssv2           Something-Something v2 split files (train.json, validation.json), with
                       labels.json beside the train one;
        kinetics       Kinetics annotation CSVs (label,youtube_id,time_start,time_end,split).
    frame_stride: clips take every frame_stride-th frame of a benchmark video.
    videos: the folder of the videos that the split files of a VIDEO_FOLDER_FORMATS format
        name, at any depth (flat, or in per-class or per-split folders); empty for the other
        formats.
    """

    format: str
    train: str
    test: str
    frame_stride: PositiveInt
    videos: str = ""

    def check(self, path: str) -> None:
        given = bool(self.train), bool(self.test)
        if self.format == "synthetic":
            _require(
                given == (False, False),
                f"{path}.format='synthetic' reads the curated shards: leave {path}.train and "
                f"{path}.test empty",
            )
        else:
            _require(
                given == (True, True),
                f"{path}.format={self.format!r} needs both {path}.train and {path}.test paths",
            )
        if self.format in VIDEO_FOLDER_FORMATS:
            _require(
                bool(self.videos),
                f"{path}.format={self.format!r} needs {path}.videos, the folder of its videos",
            )
        else:
            _require(
                not self.videos,
                f"{path}.videos is read by the {list(VIDEO_FOLDER_FORMATS)} formats only: leave "
                f"it empty for format={self.format!r}",
            )


@dataclasses.dataclass(frozen=True)
class TaskReadoutConfig:
    """The readout of one task: its size and training schedule (AdamW, cosine decay), its data,
    and optionally a trained readout to score instead of training one.

    pretrained: "" trains the readout; a readout file written by `fourds convert` (the official
        4DS depth readout) is scored as it is, without training (depth only).
    pretrain_clips: at most this many more training clips, cut from the curated pretraining
        segments (whose shards carry the synthetic corpus' ground truth) and added to
        readout-train: fourds.data.benchmarks.pretrain_clips, the same clips in every regime;
        readout-test is never touched. 0: readout-train alone; so is a benchmark `source` or
        pretraining videos without ground truth. metrics.json says how many were added.
    seeds: how many readouts to train, from readout.seed, readout.seed + 1, ... (each its own
        initialisation and batch order, on the same features), each scored on the test clips:
        metrics.json holds their mean and each seed's headline, clips.csv a row per seed and
        clip, and the report's intervals include their spread (fourds.report.bootstrap).
    """

    width: PositiveInt
    heads: PositiveInt
    steps: PositiveInt
    batch_size: PositiveInt
    lr: PositiveFloat
    weight_decay: Annotated[float, at_least(0)]
    source: SourceConfig
    pretrained: str
    pretrain_clips: Annotated[int, at_least(0)] = 0
    seeds: PositiveInt = 1

    def check(self, path: str) -> None:
        _divisible(self, path, "width", "heads")


@dataclasses.dataclass(frozen=True)
class FidelityConfig:
    """Reconstruction fidelity: FID, KID and PSNR between held-out frames and their MAE
    reconstructions (visible patches from the input, masked ones predicted), per scale.

    feature_extractor: the features FID and KID compare, one fixed network for every scale so
        that the numbers are comparable across the ladder:
        fourds     mean-pooled tokens of a frozen fourds encoder, each frame repeated to a
                   static clip: `encoder_weights`, or "" for the pretrained encoder of the
                   ladder scale `extractor_scale`;
        inception  torch-fidelity's InceptionV3 (2048-d pool features, the standard FID) from
                   the weights file `inception_weights` (required; nothing is downloaded).
    extractor_scale: the ladder scale (one of ladder.scales) whose pretrained encoder is the
        `fourds` extractor when `encoder_weights` is "": a small one keeps every fidelity stage
        cheap (the embedded ladder names its largest, the 4ds ladder 4DS-S).
    precision: the dtype the MAE and the `fourds` extractor hold their weights and compute in
        ("fp32" or "bf16"); targets, PSNR and the FID/KID statistics stay fp32. InceptionV3
        always runs in fp32.
    clips: readout-test clips reconstructed, the first ones (0: all).
    frames_per_clip: frames of each clip compared, evenly spaced (0: all).
    kid_subset_size, kid_subsets: KID's subsets of frames; the size must not exceed the number
        of frames compared.
    seed: the masks (mae.mask_ratio and mask_type of the checkpoint) and KID's subsets.
    """

    feature_extractor: Literal[FEATURE_EXTRACTORS]
    encoder_weights: str
    extractor_scale: str
    inception_weights: str
    precision: Literal[PRECISIONS]
    clips: Annotated[int, at_least(0, "0: all")]
    frames_per_clip: Annotated[int, at_least(0, "0: all")]
    kid_subset_size: Annotated[int, at_least(2)]
    kid_subsets: PositiveInt
    batch_size: PositiveInt
    seed: int

    def check(self, path: str) -> None:
        if self.feature_extractor == "inception":
            _require(
                bool(self.inception_weights),
                f"{path}.inception_weights is empty: {path}.feature_extractor='inception' needs "
                "torch-fidelity's InceptionV3 weights file (weights-inception-2015-12-05-"
                "6726825d.pth; nothing is downloaded)",
            )
            _require(
                not self.encoder_weights,
                f"{path}.encoder_weights={self.encoder_weights!r} is read only by "
                f"{path}.feature_extractor='fourds': leave it empty",
            )
        else:
            _require(
                not self.inception_weights,
                f"{path}.inception_weights={self.inception_weights!r} is read only by "
                f"{path}.feature_extractor='inception': leave it empty",
            )
        if self.clips and self.frames_per_clip:
            frames = self.clips * self.frames_per_clip
            _require(
                self.kid_subset_size <= frames,
                f"{path}.kid_subset_size={self.kid_subset_size} exceeds the {frames} frames "
                f"compared ({path}.clips={self.clips} x {path}.frames_per_clip="
                f"{self.frames_per_clip})",
            )


@dataclasses.dataclass(frozen=True)
class Params:
    """The whole of `params.yaml`."""

    ladder: LadderConfig
    models: dict[str, ModelConfig]
    runtime: RuntimeConfig
    launcher: LauncherConfig
    curate: CurateConfig
    mae: MAEConfig
    pretrain: PretrainConfig
    readout: ReadoutConfig
    readouts: dict[str, TaskReadoutConfig]
    fidelity: FidelityConfig

    def check(self, path: str) -> None:
        for task in self.readout.tasks:
            _require(
                task in self.readouts,
                f"readout.tasks has {task!r}, which has no settings under readouts "
                f"(known: {sorted(self.readouts)})",
            )
        for task, settings in self.readouts.items():
            _require(
                not settings.pretrained or self.readout.regimes == ("frozen",),
                f"readouts.{task}.pretrained scores a trained readout on a frozen encoder: "
                f"readout.regimes={list(self.readout.regimes)} must be ['frozen']",
            )
        if not isinstance(self.pretrain.activation_checkpointing, bool):
            unknown = set(self.pretrain.activation_checkpointing) - set(self.models)
            _require(
                not unknown,
                f"pretrain.activation_checkpointing names {sorted(unknown)}, which are not "
                f"defined under models (known: {sorted(self.models)})",
            )
        unknown = set(self.pretrain.data_parallel) - set(self.models)
        _require(
            not unknown,
            f"pretrain.data_parallel names {sorted(unknown)}, which are not defined under "
            f"models (known: {sorted(self.models)})",
        )
        for scale in self.ladder.scales:
            _require(
                scale in self.models,
                f"ladder.scales has {scale!r}, which is not defined under models "
                f"(known: {sorted(self.models)})",
            )
            model = self.models[scale]
            t, p, q = model.tubelet
            _require(
                self.curate.clip_frames % t == 0,
                f"curate.clip_frames={self.curate.clip_frames} is not divisible by "
                f"models.{scale}.tubelet[t]={t}",
            )
            _require(
                self.curate.resolution % p == 0 and self.curate.resolution % q == 0,
                f"curate.resolution={self.curate.resolution} is not divisible by "
                f"models.{scale}.tubelet[h, w]=({p}, {q})",
            )
            if self.mae.decoder == "queries":
                self._check_queries(scale, model)
        window = (self.curate.clip_frames - 1) * self.pretrain.frame_stride + 1
        _require(
            window <= self.curate.pretrain_frames,
            f"curate.pretrain_frames={self.curate.pretrain_frames} is shorter than a pretraining "
            f"window of {window} frames (curate.clip_frames={self.curate.clip_frames} at "
            f"pretrain.frame_stride={self.pretrain.frame_stride})",
        )
        _require(
            self.fidelity.extractor_scale in self.ladder.scales,
            f"fidelity.extractor_scale={self.fidelity.extractor_scale!r} is not one of "
            f"ladder.scales={list(self.ladder.scales)}: name the scale whose encoder extracts "
            "the FID features",
        )
        _require(
            self.fidelity.frames_per_clip <= self.curate.clip_frames,
            f"fidelity.frames_per_clip={self.fidelity.frames_per_clip} exceeds "
            f"curate.clip_frames={self.curate.clip_frames}",
        )

    def _check_queries(self, scale: str, model: ModelConfig) -> None:
        """The 4DS decoding scheme needs whole coarse patches and enough encoder blocks."""
        _require(
            self.mae.query_blocks <= model.depth,
            f"mae.query_blocks={self.mae.query_blocks} exceeds models.{scale}.depth={model.depth}",
        )
        coarse = [t * s for t, s in zip(model.tubelet, self.mae.query_stride, strict=True)]
        sizes = (self.curate.clip_frames, self.curate.resolution, self.curate.resolution)
        _require(
            all(size % patch == 0 for size, patch in zip(sizes, coarse, strict=True)),
            f"the clip {sizes[0]}x{sizes[1]}x{sizes[2]} does not divide into coarse patches "
            f"{coarse[0]}x{coarse[1]}x{coarse[2]} (models.{scale}.tubelet x mae.query_stride)",
        )

    def model(self, scale: str) -> ModelConfig:
        """The architecture of one ladder scale, with a clear error for unknown names."""
        if scale not in self.models:
            raise ConfigError(
                f"scale {scale!r} is not defined under models (known: {sorted(self.models)})"
            )
        return self.models[scale]


def _convert(kind: Any, value: Any, path: str) -> Any:
    """Check `value` against the annotation `kind` and convert lists to tuples."""
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        return parse(kind, value, path)
    if origin is Annotated:
        kind, *rules = typing.get_args(kind)
        value = _convert(kind, value, path)
        for rule in rules:
            rule.check(value, path)
        return value
    if origin is Literal:
        names = typing.get_args(kind)
        _require(value in names, f"{path}={value!r} is not one of {list(names)}")
        return value
    if origin is dict:
        _, item_kind = typing.get_args(kind)
        _require(isinstance(value, dict), f"{path}={value!r} must be a mapping")
        return {str(k): _convert(item_kind, v, f"{path}.{k}") for k, v in value.items()}
    if origin is tuple:
        args = typing.get_args(kind)
        _require(isinstance(value, (list, tuple)), f"{path}={value!r} must be a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        _require(len(value) == len(args), f"{path}={list(value)} must have {len(args)} entries")
        return tuple(
            _convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        _require(ok, f"{path}={value!r} must be a number")
        return float(value)
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        _require(ok, f"{path}={value!r} must be an integer")
        return value
    if origin in (types.UnionType, typing.Union):
        for option in typing.get_args(kind):
            try:
                return _convert(option, value, path)
            except ConfigError:
                continue
        names = " or ".join(_kind_name(option) for option in typing.get_args(kind))
        raise ConfigError(f"{path}={value!r} must be {names}")
    _require(isinstance(value, kind), f"{path}={value!r} must be of type {kind.__name__}")
    return value


def _kind_name(kind: Any) -> str:
    """`bool`, or `a list` for tuple annotations (for error messages)."""
    return "a list" if typing.get_origin(kind) is tuple else kind.__name__


def parse(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass `cls` from a mapping, checking keys, types and the class's own rules.

    Args:
        cls: a dataclass of this module.
        data: the mapping read from YAML.
        path: key path of `data` inside params.yaml ("" for the root).
    """
    where = path or "params.yaml"
    _require(isinstance(data, dict), f"{where} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(fields))
    _require(not unknown, f"{where} has unknown key(s) {unknown} (known: {fields})")
    missing = [name for name in fields if name not in data]
    _require(not missing, f"{where} is missing key(s) {missing}")
    prefix = f"{path}." if path else ""
    values = {name: _convert(hints[name], data[name], prefix + name) for name in fields}
    instance = cls(**values)
    if hasattr(instance, "check"):  # the rules that relate several fields
        instance.check(path)
    return instance
