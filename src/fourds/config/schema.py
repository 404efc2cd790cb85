"""Typed schema of `params.yaml`.

Every section is a frozen pydantic dataclass (a `Section`): the rest of fourds reads it as a
plain dataclass (attributes, `dataclasses.replace`, `asdict`, `fields`), and building one,
from params.yaml or in code, validates it. A field's annotation says what its key takes: a
`Literal` alias such as `Precision` one of its names; a bounded number type such as
`PositiveInt` (`Annotated[int, Field(gt=0)]`) a number in its range, the field's description
saying what a bound means (`Field(ge=0, description="0: off")`); a pattern or a union, the
description says what it must be. Numbers, booleans and strings are strict ("8" is no integer,
1 no boolean); an integer given for a float becomes that float. A section's `check(path)` then
checks the rules that relate several of its fields.

`parse(cls, data, path)` builds a section from the plain mapping read from YAML, which must give
every key (those with a default too) and no other. Every error is a `ConfigError` whose message
starts with the key path and the offending value, for example
`models.cpu_s.width=100 is not divisible by models.cpu_s.heads=3`.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any, Literal

import pydantic
from pydantic import (
    BeforeValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)
from pydantic.dataclasses import dataclass
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from fourds.config.formats import FORMATS, SYNTHETIC, source_formats
from fourds.config.regimes import REGIMES
from fourds.config.section import (
    HERE,
    SECTION,
    Extent,
    Fraction,
    FractionRange,
    PositiveFloat,
    PositiveFraction,
    PositiveInt,
    PositiveRange,
    Section,
    Seed,
    divisible,
    ordered,
    require,
)
from fourds.config.task_options import TaskOptions
from fourds.config.tasks import options_section
from fourds.config.world_levels import WORLD_LEVELS
from fourds.errors import ConfigError

AttentionBackend = Literal["sdpa", "sdpa_cudnn", "sdpa_flash", "sdpa_efficient", "xformers", "math"]
Regime = Literal[tuple(REGIMES)]  # fourds.config.regimes
Device = Literal["cpu", "cuda", "auto"]
MaskType = Literal["random", "tube"]
Decoder = Literal["mae_st", "queries"]
ResidualInit = Literal["xavier", "depth_scaled", "zero"]
LrScaling = Literal["all", "hidden"]
Precision = Literal["fp32", "bf16"]
Layout = Literal["fsdp", "hsdp", "ddp"]  # data-parallel layouts of a multi-process run
Launcher = Literal["local", "torchrun", "slurm"]
Crop = Literal["center", "stretch"]
PretrainSource = Literal["shards", "world"]  # curated pretrain segments, or the rendered world
ShardFormat = Literal["npz", "webdataset"]  # fourds.data.shards.FORMATS
FeatureExtractor = Literal["fourds", "inception"]
# The names of the choices that other modules check or offer (as a command's choices)
ATTENTION_BACKENDS = typing.get_args(AttentionBackend)
LAYOUTS = typing.get_args(Layout)
CROPS = typing.get_args(Crop)
SHARD_FORMATS = typing.get_args(ShardFormat)
# Decoding limits (CurateConfig): 8K video (7680x4320 = 33.2M pixels) fits.
MAX_FRAME_PIXELS = 36_000_000
MAX_QUEUED_MIB = 1024
MAX_DECODED_MIB = 96  # one source's frames (8192 at 64x64) and ground truth, decoded
# pretrain.source 'world': rays rendered for one step's batch, at most twice the GPU ladder's
# 1024 clips of 8x128x128 rays (8x64x64 pixels at world_supersample 2)
MAX_WORLD_RAYS = 2**28

FolderMd5 = Annotated[
    StrictStr,
    Field(
        pattern=r"^[0-9a-f]{32}\.dir$",
        description="DVC's md5 of a folder: 32 hex digits and .dir (the md5 of its .dvc file)",
    ),
]
Key = Annotated[str, BeforeValidator(str)]  # a mapping's key (YAML reads `1:` as a number)


@dataclass(frozen=True, config=SECTION)
class ModelConfig(Section):
    """One encoder architecture of the ladder (a plain 4DS video ViT).

    qk_norm, parallel_blocks and bias=False are the ViT-22B recipe for the largest scales.
    """

    width: PositiveInt
    depth: PositiveInt
    heads: PositiveInt
    mlp_dim: PositiveInt
    tubelet: Extent
    qk_norm: StrictBool
    parallel_blocks: StrictBool
    bias: StrictBool

    def check(self, path: str) -> None:
        divisible(self, path, "width", "heads")


@dataclass(frozen=True, config=SECTION)
class LadderConfig(Section):
    """The scaling ladder: the model names to pretrain and evaluate, smallest first."""

    name: StrictStr
    scales: tuple[StrictStr, ...]

    def check(self, path: str) -> None:
        require(len(self.scales) > 0, f"{path}.scales is empty: list at least one model")
        require(
            len(set(self.scales)) == len(self.scales),
            f"{path}.scales={list(self.scales)} lists a model twice",
        )
        dashed = [scale for scale in self.scales if "-" in scale]
        require(
            not dashed,
            f"{path}.scales has {dashed[0]!r}: a scale's name holds no '-' (a readout stage is "
            "named <scale>-<regime>, fourds.layout)"
            if dashed
            else "",
        )


@dataclass(frozen=True, config=SECTION)
class RuntimeConfig(Section):
    """Where and how the stages compute."""

    device: Device
    attention: AttentionBackend
    threads: Annotated[StrictInt, Field(ge=0, description="0: default")]


@dataclass(frozen=True, config=SECTION)
class LauncherConfig(Section):
    """How the pretrain stage is started: in place, under torchrun, or as a Slurm job.

    nnodes x nproc_per_node processes in all. The Slurm fields (partition, account,
    gpus_per_node, cpus_per_task, mem_gb, time_minutes; 0 or "" for the cluster default) are
    read only by `kind: slurm`, rdzv_endpoint only by multi-node torchrun. requeues: how many
    times a Slurm job that reaches time_minutes requeues itself (the run resumes from its last
    checkpoint), so a stage may take up to (requeues + 1) x time_minutes.
    """

    kind: Launcher
    nnodes: PositiveInt
    nproc_per_node: PositiveInt
    rdzv_endpoint: StrictStr
    partition: StrictStr
    account: StrictStr
    gpus_per_node: Annotated[StrictInt, Field(ge=0, description="0: cluster default")]
    cpus_per_task: Annotated[StrictInt, Field(ge=0, description="0: cluster default")]
    mem_gb: Annotated[StrictInt, Field(ge=0, description="0: cluster default")]
    time_minutes: Annotated[StrictInt, Field(ge=0, description="0: cluster default")]
    requeues: Annotated[StrictInt, Field(ge=0, description="0: a job that reaches its limit ends")]

    def check(self, path: str) -> None:
        require(
            not (self.kind == "torchrun" and self.nnodes > 1 and not self.rdzv_endpoint),
            f"{path}.rdzv_endpoint is empty: a {self.nnodes}-node torchrun needs host:port",
        )
        require(
            not (self.kind == "slurm" and self.time_minutes == 0),
            f"{path}.time_minutes=0: a Slurm job needs a time limit",
        )


@dataclass(frozen=True, config=SECTION)
class CurateConfig(Section):
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
    fps: Annotated[StrictFloat, Field(ge=0, description="0: keep the source rate")]
    crop: Crop
    max_frame_pixels: PositiveInt = MAX_FRAME_PIXELS
    max_queued_mib: PositiveInt = MAX_QUEUED_MIB
    max_decoded_mib: PositiveInt = MAX_DECODED_MIB
    workers: Annotated[StrictInt, Field(ge=0, description="0: decode in the main process")] = 0
    pretrain_format: ShardFormat = "npz"
    data: StrictStr = "data"
    pinned_data: dict[Key, FolderMd5] = dataclasses.field(default_factory=dict)

    @property
    def span(self) -> int:
        """Number of source frames one clip covers."""
        return (self.clip_frames - 1) * self.frame_stride + 1


@dataclass(frozen=True, config=SECTION)
class MAEConfig(Section):
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

    mask_ratio: Fraction
    mask_type: MaskType
    norm_pix_loss: StrictBool
    decoder: Decoder
    decoder_width: PositiveInt
    decoder_depth: PositiveInt
    decoder_heads: PositiveInt
    query_blocks: PositiveInt
    query_stride: Extent
    residual_init: ResidualInit

    def check(self, path: str) -> None:
        divisible(self, path, "decoder_width", "decoder_heads")


@dataclass(frozen=True, config=SECTION)
class PretrainConfig(Section):
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

    source: where the clips come from: "shards", the curated pretrain segments; "world", fresh
    clips of the procedural world rendered on the model's device each step, none seen twice
    (fourds.train.world_clips; windows of a curate.pretrain_frames-frame video, no crops:
    crop_scale must be [1, 1]).

    world_supersample: with source 'world', each pixel's colour averages world_supersample x
    world_supersample rays (2: as the readout corpus; 1: a ray per pixel, a quarter of the
    rendering, edges aliased).

    world_complexity: with source 'world', the level of the world its clips and held-out clips
    are drawn from (fourds.config.world_levels: simple, standard, rich; standard is the embedded
    corpus's world).

    heldout_clips, heldout_every: the held-out curve (fourds.train.heldout): the MAE loss on
    heldout_clips fixed clips with fixed masks, the same for every scale and seed of a study,
    before the first step, every heldout_every steps and after the last (heldout_clips 0: no
    curve).
    """

    frame_stride: PositiveInt
    crop_scale: FractionRange
    crop_aspect: PositiveRange
    steps: PositiveInt
    batch_size: PositiveInt
    lr: PositiveFloat
    lr_reference_width: Annotated[
        StrictInt, Field(ge=0, description="0: the same lr at every width")
    ]
    lr_scaling: LrScaling
    weight_decay: Annotated[StrictFloat, Field(ge=0)]
    warmup_steps: StrictInt
    grad_clip: Annotated[StrictFloat, Field(ge=0, description="0: off")]
    seed: Seed
    log_every: PositiveInt
    checkpoint_every: StrictInt
    keep_checkpoints: PositiveInt
    loader_workers: Annotated[StrictInt, Field(ge=0, description="0: main thread")]
    prefetch: PositiveInt
    activation_checkpointing: Annotated[
        StrictBool | tuple[StrictStr, ...], Field(description="bool or a list")
    ]
    data_parallel: dict[Key, Layout]
    precision: Precision
    micro_batch: Annotated[StrictInt, Field(ge=0, description="0: the whole per-process batch")]
    compile: StrictBool
    shards_url: StrictStr = ""
    source: PretrainSource = "shards"
    world_supersample: PositiveInt = 2
    world_complexity: StrictStr = "standard"
    heldout_clips: Annotated[StrictInt, Field(ge=0, description="0: no held-out curve")] = 64
    heldout_every: PositiveInt = 64

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
        ordered(self, path, "crop_scale")
        ordered(self, path, "crop_aspect")
        require(
            self.checkpoint_every >= 0 and self.checkpoint_every % self.log_every == 0,
            f"{path}.checkpoint_every={self.checkpoint_every} must be 0 (off) or a multiple of "
            f"{path}.log_every={self.log_every}",
        )
        require(
            0 <= self.warmup_steps < self.steps,
            f"{path}.warmup_steps={self.warmup_steps} must be in [0, {path}.steps={self.steps})",
        )
        require(
            self.source != "world" or tuple(self.crop_scale) == (1.0, 1.0),
            f"{path}.source='world' renders fresh clips and takes no crops: set "
            f"{path}.crop_scale=[1.0, 1.0] (now {list(self.crop_scale)})",
        )
        require(
            self.world_complexity in WORLD_LEVELS,
            f"{path}.world_complexity={self.world_complexity!r} is not a level of the world: "
            f"expected one of {list(WORLD_LEVELS)}",
        )
        require(
            self.micro_batch == 0 or self.batch_size % self.micro_batch == 0,
            f"{path}.micro_batch={self.micro_batch} does not divide {path}.batch_size="
            f"{self.batch_size}",
        )


@dataclass(frozen=True, config=SECTION)
class ReadoutConfig(Section):
    """Settings shared by every readout stage.

    tasks: the readout tasks to run, rows of the task table (fourds.config.tasks.TASKS, which
        checks the names).
    regimes: the regimes each scale's readouts run in, one stage each: "frozen" trains only
        the readout on the encoder's features; "finetuned" also trains the encoder, at
        `finetune_lr_scale` times the readout's learning rate; "initial" is the control: the
        scale's encoder exactly as pretraining starts it (same architecture, recipe and seed,
        step 0), with the readout trained exactly as for "frozen"; "random_init" a second
        control, a random network of the same architecture (fourds.config.regimes).
    cache_features: frozen and control stages run the encoder once per clip and train the
        readout on the stored features (the same result, much faster); false runs it every step.
        Fine-tuned stages always run it every step (their features change as the encoder trains).
    precision: the dtype a frozen encoder (frozen and the controls) holds its weights and
        computes in: "fp32", or "bf16" (half the memory: 4DS-j's 22B encoder in 41 GiB, one
        80 GB GPU). Its features reach the readout as fp32, and the readout trains in fp32.
        Fine-tuned stages keep an fp32 encoder (its weights train) whatever this says.
    start_at_baseline: a trained readout of a task with learned queries (depth, pose,
        classification) starts from its task's no-learning baseline (`Task.baseline`, taken
        from the training clips: for depth each pixel's mean log-depth) and learns the rest;
        false: from zero outputs. Tasks with given queries start at their baseline either way.
    max_host_mib: the host memory (MiB) one split's decoded benchmark clips, and one split's
        cached features, may each take; past it they are written to a scratch folder beside the
        stage's output and read memory-mapped (fourds.data.spill), with the same results, so a
        benchmark of any size (SSv2's 169k training videos) runs in bounded memory; 0: always
        on disk.
    """

    tasks: tuple[StrictStr, ...]
    readout_depth: PositiveFraction
    regimes: tuple[Regime, ...]
    finetune_lr_scale: PositiveFloat
    cache_features: StrictBool
    precision: Precision
    seed: Seed
    start_at_baseline: StrictBool = True
    max_host_mib: Annotated[StrictInt, Field(ge=0, description="0: always on disk")] = 4096

    @pydantic.model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        """A key of one task's options, which this section held before they moved to their
        task, is refused with its new place."""
        if isinstance(data, dict):
            for key, place in MOVED_TO_TASKS.items():
                require(key not in data, f"readout.{key} is now {place}")
        return data

    def check(self, path: str) -> None:
        require(bool(self.regimes), f"{path}.regimes is empty: name at least one regime")
        require(
            len(set(self.regimes)) == len(self.regimes),
            f"{path}.regimes={list(self.regimes)} names a regime twice",
        )


# The keys of one task's options that `readout` held before they moved to their task
MOVED_TO_TASKS = {
    "depth_alignment": "readouts.depth.options.alignment",
    "depth_averaging": "readouts.depth.options.averaging",
    "depth_range": "readouts.depth.options.range",
    "depth_loss": "readouts.depth.options.loss",
    "pose_pairs": "readouts.pose.options.pairs",
    "pose_readout": "readouts.pose.options.head",
    "tracking_queries": "readouts.tracking.options.queries",
    "tracking_static": "readouts.tracking.options.static",
    "tracking_readout": "readouts.tracking.options.head",
}


@dataclass(frozen=True, config=SECTION)
class SourceConfig(Section):
    """Where a readout's train and test clips come from.

    format: "synthetic" reads the curated corpus's readout-train and readout-test shards (train
        and test stay empty); the others (fourds.config.formats.FORMATS) read a public
        benchmark format, cut into clips of the encoder's input size (see
        fourds.data.benchmarks for each layout):
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
    videos: the folder of the videos that the split files of a format with `reads_videos`
        name, at any depth (flat, or in per-class or per-split folders); empty for the other
        formats.
    """

    format: StrictStr
    train: StrictStr
    test: StrictStr
    frame_stride: PositiveInt
    videos: StrictStr = ""

    def check(self, path: str) -> None:
        require(
            self.format in source_formats(),
            f"{path}.format={self.format!r} is not one of {list(source_formats())}",
        )
        given = bool(self.train), bool(self.test)
        if self.format == SYNTHETIC:
            require(
                given == (False, False),
                f"{path}.format='synthetic' reads the curated shards: leave {path}.train and "
                f"{path}.test empty",
            )
        else:
            require(
                given == (True, True),
                f"{path}.format={self.format!r} needs both {path}.train and {path}.test paths",
            )
        reading = [name for name, entry in FORMATS.items() if entry.reads_videos]
        if self.format in reading:
            require(
                bool(self.videos),
                f"{path}.format={self.format!r} needs {path}.videos, the folder of its videos",
            )
        else:
            require(
                not self.videos,
                f"{path}.videos is read by the {reading} formats only: leave it empty for "
                f"format={self.format!r}",
            )


@dataclass(frozen=True, config=SECTION)
class TaskReadoutConfig(Section):
    """The readout of one task: its size and training schedule (AdamW, cosine decay), its data,
    and optionally a trained readout to score instead of training one.

    pretrained: "" trains the readout; a readout file written by `fourds convert` (the official
        4DS depth readout) is scored as it is, without training (depth only).
    pretrain_clips: at most this many more training clips, cut from the curated pretraining
        segments (whose shards carry the synthetic corpus' ground truth) and added to
        readout-train: fourds.data.benchmarks.pretrain_clips, the same clips in every regime;
        readout-test is never touched. 0: readout-train alone; so is a benchmark `source` or
        pretraining videos without ground truth. metrics.json says how many were added.
    options: the task's own options, the section its entry of the task table names
        (fourds.config.task_options): depth's scoring and loss, pose's pairs and head,
        tracking's queries and head; `{}` for a task without any.
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
    weight_decay: Annotated[StrictFloat, Field(ge=0)]
    source: SourceConfig
    pretrained: StrictStr
    pretrain_clips: Annotated[StrictInt, Field(ge=0)] = 0
    seeds: PositiveInt = 1
    options: TaskOptions = TaskOptions()

    def check(self, path: str) -> None:
        divisible(self, path, "width", "heads")


@dataclass(frozen=True, config=SECTION)
class FidelityConfig(Section):
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

    feature_extractor: FeatureExtractor
    encoder_weights: StrictStr
    extractor_scale: StrictStr
    inception_weights: StrictStr
    precision: Precision
    clips: Annotated[StrictInt, Field(ge=0, description="0: all")]
    frames_per_clip: Annotated[StrictInt, Field(ge=0, description="0: all")]
    kid_subset_size: Annotated[StrictInt, Field(ge=2)]
    kid_subsets: PositiveInt
    batch_size: PositiveInt
    seed: Seed

    def check(self, path: str) -> None:
        if self.feature_extractor == "inception":
            require(
                bool(self.inception_weights),
                f"{path}.inception_weights is empty: {path}.feature_extractor='inception' needs "
                "torch-fidelity's InceptionV3 weights file (weights-inception-2015-12-05-"
                "6726825d.pth; nothing is downloaded)",
            )
            require(
                not self.encoder_weights,
                f"{path}.encoder_weights={self.encoder_weights!r} is read only by "
                f"{path}.feature_extractor='fourds': leave it empty",
            )
        else:
            require(
                not self.inception_weights,
                f"{path}.inception_weights={self.inception_weights!r} is read only by "
                f"{path}.feature_extractor='inception': leave it empty",
            )
        if self.clips and self.frames_per_clip:
            frames = self.clips * self.frames_per_clip
            require(
                self.kid_subset_size <= frames,
                f"{path}.kid_subset_size={self.kid_subset_size} exceeds the {frames} frames "
                f"compared ({path}.clips={self.clips} x {path}.frames_per_clip="
                f"{self.frames_per_clip})",
            )


@dataclass(frozen=True, config=SECTION)
class Params(Section):
    """The whole of `params.yaml`."""

    ladder: LadderConfig
    models: dict[Key, ModelConfig]
    runtime: RuntimeConfig
    launcher: LauncherConfig
    curate: CurateConfig
    mae: MAEConfig
    pretrain: PretrainConfig
    readout: ReadoutConfig
    readouts: dict[Key, TaskReadoutConfig]
    fidelity: FidelityConfig

    @pydantic.field_validator("readouts", mode="before")
    @classmethod
    def _task_options(cls, readouts: Any) -> Any:
        """Each task's `options` mapping parsed into the section its task declares."""
        if not isinstance(readouts, dict):
            return readouts
        typed = {}
        for task, settings in readouts.items():
            if isinstance(settings, dict) and isinstance(settings.get("options"), dict):
                section = options_section(str(task))
                options = parse(section, settings["options"], f"readouts.{task}.options")
                settings = {**settings, "options": options}
            typed[task] = settings
        return typed

    def check(self, path: str) -> None:
        if self.pretrain.source == "world":
            side = self.curate.resolution * self.pretrain.world_supersample
            rays = self.pretrain.batch_size * self.curate.clip_frames * side**2
            require(
                rays <= MAX_WORLD_RAYS,
                f"pretrain.source='world' would render {rays:,} rays a step (pretrain.batch_size "
                f"x curate.clip_frames x (curate.resolution x pretrain.world_supersample)^2): "
                f"at most {MAX_WORLD_RAYS:,}; lower one of them",
            )
        for task in self.readout.tasks:
            require(
                task in self.readouts,
                f"readout.tasks has {task!r}, which has no settings under readouts "
                f"(known: {sorted(self.readouts)})",
            )
        for task, settings in self.readouts.items():
            require(
                not settings.pretrained or self.readout.regimes == ("frozen",),
                f"readouts.{task}.pretrained scores a trained readout on a frozen encoder: "
                f"readout.regimes={list(self.readout.regimes)} must be ['frozen']",
            )
        if not isinstance(self.pretrain.activation_checkpointing, bool):
            unknown = set(self.pretrain.activation_checkpointing) - set(self.models)
            require(
                not unknown,
                f"pretrain.activation_checkpointing names {sorted(unknown)}, which are not "
                f"defined under models (known: {sorted(self.models)})",
            )
        unknown = set(self.pretrain.data_parallel) - set(self.models)
        require(
            not unknown,
            f"pretrain.data_parallel names {sorted(unknown)}, which are not defined under "
            f"models (known: {sorted(self.models)})",
        )
        for scale in self.ladder.scales:
            require(
                scale in self.models,
                f"ladder.scales has {scale!r}, which is not defined under models "
                f"(known: {sorted(self.models)})",
            )
            model = self.models[scale]
            t, p, q = model.tubelet
            require(
                self.curate.clip_frames % t == 0,
                f"curate.clip_frames={self.curate.clip_frames} is not divisible by "
                f"models.{scale}.tubelet[t]={t}",
            )
            require(
                self.curate.resolution % p == 0 and self.curate.resolution % q == 0,
                f"curate.resolution={self.curate.resolution} is not divisible by "
                f"models.{scale}.tubelet[h, w]=({p}, {q})",
            )
            if self.mae.decoder == "queries":
                self._check_queries(scale, model)
        window = (self.curate.clip_frames - 1) * self.pretrain.frame_stride + 1
        require(
            window <= self.curate.pretrain_frames,
            f"curate.pretrain_frames={self.curate.pretrain_frames} is shorter than a pretraining "
            f"window of {window} frames (curate.clip_frames={self.curate.clip_frames} at "
            f"pretrain.frame_stride={self.pretrain.frame_stride})",
        )
        require(
            self.fidelity.extractor_scale in self.ladder.scales,
            f"fidelity.extractor_scale={self.fidelity.extractor_scale!r} is not one of "
            f"ladder.scales={list(self.ladder.scales)}: name the scale whose encoder extracts "
            "the FID features",
        )
        require(
            self.fidelity.frames_per_clip <= self.curate.clip_frames,
            f"fidelity.frames_per_clip={self.fidelity.frames_per_clip} exceeds "
            f"curate.clip_frames={self.curate.clip_frames}",
        )

    def _check_queries(self, scale: str, model: ModelConfig) -> None:
        """The 4DS decoding scheme needs whole coarse patches and enough encoder blocks."""
        require(
            self.mae.query_blocks <= model.depth,
            f"mae.query_blocks={self.mae.query_blocks} exceeds models.{scale}.depth={model.depth}",
        )
        coarse = [t * s for t, s in zip(model.tubelet, self.mae.query_stride, strict=True)]
        sizes = (self.curate.clip_frames, self.curate.resolution, self.curate.resolution)
        require(
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

    def pretraining(self, scale: str) -> PretrainSpec:
        """What pretraining ladder scale `scale` reads of the params (an unknown scale raises
        ConfigError, as `model` does)."""
        return PretrainSpec(
            scale, self.model(scale), self.mae, self.curate, self.pretrain, self.runtime.attention
        )

    def readout_spec(self, scale: str, task: str, regime: str) -> ReadoutSpec:
        """What the readout stage of (`scale`, `task`, `regime`) reads of the params.

        Raises:
            ConfigError: the scale is not defined, or the task or the regime is not one the
                study runs (readout.tasks, readout.regimes).
        """
        self.model(scale)
        if task not in self.readout.tasks:
            raise ConfigError(f"task {task!r} is not in readout.tasks={list(self.readout.tasks)}")
        if regime not in self.readout.regimes:
            raise ConfigError(
                f"regime {regime!r} is not in readout.regimes={list(self.readout.regimes)}"
            )
        return ReadoutSpec(task, regime, self.readout, self.readouts[task], self.pretraining(scale))

    def ladder_pretraining(self) -> LadderSpec:
        """What pretraining the whole ladder reads of the params."""
        scales = tuple(self.pretraining(scale) for scale in self.ladder.scales)
        return LadderSpec(self.ladder.name, scales, self.launcher)

    def study_layout(self) -> StudyLayout:
        """The stages of the study: the ladder's scales, the readout tasks and regimes."""
        return StudyLayout(self.ladder.scales, self.readout.tasks, self.readout.regimes)


@dataclasses.dataclass(frozen=True)
class PretrainSpec:
    """What pretraining one ladder scale reads of the params (`Params.pretraining`), which is
    also what the model factory, the parallel plan and `fourds plan` read of a scale.

    scale: its name in ladder.scales; model: its architecture (models.<scale>); mae: the MAE;
    curate: the curation of its clips, [curate.clip_frames, curate.resolution,
        curate.resolution, 3] (the run fingerprint hashes every field that shapes training);
    pretrain: the pretraining run; attention: the attention backend (runtime.attention, or
        the one fourds.runtime.setup_runtime replaced it with where it does not run).
    """

    scale: str
    model: ModelConfig
    mae: MAEConfig
    curate: CurateConfig
    pretrain: PretrainConfig
    attention: str


@dataclasses.dataclass(frozen=True)
class ReadoutSpec:
    """Everything one readout stage reads of the params (`Params.readout_spec`) but the runtime:
    its task and regime (fourds.config.regimes), the settings every readout shares (`shared`:
    readout), the task's own (`own`: readouts.<task>), and the pretraining of its scale
    (`pretraining`: the encoder's architecture and clips, the controls' initial weights, and
    the attention backend, runtime.attention or the one fourds.runtime.setup_runtime replaced
    it with)."""

    task: str
    regime: str
    shared: ReadoutConfig
    own: TaskReadoutConfig
    pretraining: PretrainSpec

    @property
    def scale(self) -> str:
        return self.pretraining.scale

    @property
    def attention(self) -> str:
        return self.pretraining.attention

    def with_attention(self, attention: str) -> ReadoutSpec:
        """This spec with the attention backend that runs (fourds.runtime.setup_runtime's)."""
        pretraining = dataclasses.replace(self.pretraining, attention=attention)
        return dataclasses.replace(self, pretraining=pretraining)

    @property
    def name(self) -> str:
        """Its scale, task and regime, "cpu_s-depth-frozen" (its progress bars' label)."""
        return "-".join((self.scale, self.task, self.regime))


@dataclasses.dataclass(frozen=True)
class LadderSpec:
    """What pretraining the whole ladder reads of the params (`Params.ladder_pretraining`), as
    `fourds plan` plans it: the ladder's name, each scale's PretrainSpec (in ladder.scales
    order; they share the pretrain and curate sections and the attention backend) and the
    launcher that starts each scale's pretrain stage."""

    name: str
    scales: tuple[PretrainSpec, ...]
    launcher: LauncherConfig


@dataclasses.dataclass(frozen=True)
class StudyLayout:
    """The stages of a study, whose folders hold its results (`Params.study_layout`): a
    pretrain and a fidelity stage per scale of ladder.scales, and a readout stage per scale,
    task of readout.tasks and regime of readout.regimes."""

    scales: tuple[str, ...]
    tasks: tuple[str, ...]
    regimes: tuple[str, ...]


def parse(cls: type, data: Any, path: str = "") -> Any:
    """Build section `cls` from a mapping, checking keys, types and the section's own rules.

    Args:
        cls: a `Section`.
        data: the mapping read from YAML.
        path: key path of `data` inside params.yaml ("" for the root).

    Raises:
        ConfigError: the first error pydantic found, in one line (`_message`).
    """
    try:
        return pydantic.TypeAdapter(cls).validate_python(data)
    except pydantic.ValidationError as error:
        raise ConfigError(_message(cls, error.errors(), path)) from None


_BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")  # error types
_TYPES = {  # pydantic's error type -> what the value must be
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be of type bool",
    "string_type": "must be of type str",
    "dict_type": "must be a mapping",
    "tuple_type": "must be a list",
}


def _message(cls: type, errors: list[ErrorDetails], path: str) -> str:
    """The message of the first of pydantic's `errors` in `cls` (at `path`): key path, value,
    what is allowed."""
    error = _first(errors)
    kind, loc, value = error["type"], error["loc"], error["input"]
    if kind == "unexpected_keyword_argument":
        where, info = _locate(cls, loc[:-1], path)
        unknown = sorted(
            e["loc"][-1] for e in errors if e["type"] == kind and e["loc"][:-1] == loc[:-1]
        )
        known = [field.name for field in dataclasses.fields(info.annotation)]
        return f"{where or 'params.yaml'} has unknown key(s) {unknown} (known: {known})"
    if kind in ("missing", "too_long"):  # a list (a tuple field) of the wrong length
        where, info = _locate(cls, loc[:-1] if kind == "missing" else loc, path)
        return f"{where}={list(value)} must have {len(typing.get_args(info.annotation))} entries"
    where, info = _locate(cls, loc, path, axes=kind in _BOUNDS)
    if kind == "missing_keys":
        return f"{where or 'params.yaml'} is missing key(s) {error['ctx']['missing']}"
    if kind == "dataclass_type":
        return f"{where or 'params.yaml'} must be a mapping, got {value!r}"
    if kind == "value_error":  # a section's check()
        return str(error["ctx"]["error"]).replace(HERE, where)
    if typing.get_origin(info.annotation) is typing.Union or kind == "string_pattern_mismatch":
        rule = f"must be {info.description}"
    elif kind == "literal_error":
        rule = f"is not one of {list(typing.get_args(info.annotation))}"
    elif kind in _BOUNDS:
        rule = _range(info)
        if info.annotation is float:
            value = float(value)
    else:
        rule = _TYPES.get(kind, error["msg"])
    return f"{where}={value!r} {rule}"


def _first(errors: list[ErrorDetails]) -> ErrorDetails:
    """The error to report: pydantic lists errors in key order, but a section's unknown (then
    missing) keys, and a list's length, come before any error inside it."""

    def shape(error: ErrorDetails) -> tuple | None:
        """Where the section or list is whose keys or length `error` is about (None: not such
        an error)."""
        loc = error["loc"]
        return {"unexpected_keyword_argument": loc[:-1], "missing": loc[:-1], "too_long": loc}.get(
            error["type"]
        )

    first = errors[0]["loc"]
    shaped = [e for e in errors if (at := shape(e)) is not None and first[: len(at)] == at]
    return min(
        shaped,
        key=lambda e: (len(shape(e)), e["type"] != "unexpected_keyword_argument"),
        default=errors[0],
    )


def _locate(
    cls: type, loc: tuple[int | str, ...], path: str, axes: bool = False
) -> tuple[str, FieldInfo]:
    """The key path of the value at pydantic's `loc` in section `cls` (itself at `path`), and
    the annotation that value answers to. A union ends the walk: the rest of `loc` names its
    branches. With `axes` an `Extent`'s entries are named by axis (`tubelet[h]`), as the
    messages of ranges name them."""
    info = FieldInfo.from_annotation(cls)
    for key in loc:
        kind = info.annotation
        args = typing.get_args(kind)
        if dataclasses.is_dataclass(kind):
            info = kind.__pydantic_fields__[key]
            path = f"{path}.{key}" if path else str(key)
        elif typing.get_origin(kind) is dict:
            info = FieldInfo.from_annotation(args[1])
            path = f"{path}.{key}"
        elif typing.get_origin(kind) is tuple:
            info = FieldInfo.from_annotation(args[0] if args[-1] is Ellipsis else args[key])
            path += f"[{'thw'[key] if axes and kind == Extent else key}]"
        else:
            break
    return path, info


def _range(info: FieldInfo) -> str:
    """What a bounded number must be: "positive", ">= 0 (0: off)", "in [0, 1)"."""
    bound = {
        name: getattr(rule, name)
        for rule in info.metadata
        for name in ("gt", "ge", "lt", "le")
        if hasattr(rule, name)
    }
    if bound == {"gt": 0}:
        return "must be positive"
    if bound.keys() == {"ge"}:
        return f"must be >= {bound['ge']}" + (f" ({info.description})" if info.description else "")
    low = f"[{bound['ge']}" if "ge" in bound else f"({bound['gt']}"
    high = f"{bound['le']}]" if "le" in bound else f"{bound['lt']})"
    return f"must be in {low}, {high}"
