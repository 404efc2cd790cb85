"""The `fourds` command: one subcommand per pipeline stage, plus tools. It parses arguments,
loads and validates params, and dispatches."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fourds import __version__
from fourds.atomic import is_out_of_space
from fourds.config import ATTENTION_BACKENDS, load_params
from fourds.config.regimes import REGIMES
from fourds.config.world_levels import WORLD_LEVELS
from fourds.errors import EXPECTED_ERRORS, ConfigError
from fourds.startup import TORCH, TRAINING, import_frozen

# `fourds plan`'s names (fourds.plan.cluster.GPUS and INTERCONNECTS, which import torch, too slow
# for --help; tests/test_cli.py checks they agree)
PLAN_GPUS = ("h100", "h200", "a100")
PLAN_INTERCONNECTS = ("infiniband", "ethernet", "nvlink")
CONTRACT = "reports/tolerances.yaml"  # the regeneration contract (fourds.tolerances)
DEFAULT_PARAMS = "params.yaml"  # the pinned params plain `dvc repro` runs


def _synth(args: argparse.Namespace) -> None:
    from fourds.data.corpus import WorldSpec, write_corpus

    spec = WorldSpec(seed=args.seed, renderer=args.renderer, complexity=args.complexity)
    if args.videos:
        spec = dataclasses.replace(spec, videos=dict(args.videos))
    spec = dataclasses.replace(spec, frames=args.frames or spec.frames, size=args.size or spec.size)
    write_corpus(args.out, spec, args.device)


def _split_count(text: str) -> tuple[str, int]:
    """'pretrain=16' -> ("pretrain", 16), for `fourds synth --videos`."""
    from fourds.data.shards import SPLITS

    split, _, count = text.partition("=")
    if split not in SPLITS or not count.isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected <split>=<count>, split one of {SPLITS}"
        )
    return split, int(count)


def _zoo(args: argparse.Namespace) -> None:
    from fourds.models.zoo import format_zoo, ladders_zoo, zoo_table

    if args.ladders:
        from fourds.config.compose import ladder_params

        ladders = [params.ladder_pretraining() for params in ladder_params(args.experiments)]
        print(ladders_zoo(ladders), end="")
        return
    rows = zoo_table(_model_configs(args.models), args.frames, args.size, args.mask_ratio)
    print(format_zoo(_zoo_title(args), rows), end="")


def _zoo_title(args: argparse.Namespace) -> str:
    """What `fourds zoo` counts at: one input for every model."""
    shape = f"{args.frames}x{args.size}x{args.size}"
    return (
        f"input {shape} for every model (`fourds zoo --ladders`: each ladder at its own); "
        f"encoder training FLOPs per clip at mask ratio {args.mask_ratio}"
    )


def _model_configs(folder: str) -> dict:
    """name -> ModelConfig of every model config (*.yaml) in `folder`."""
    from pathlib import Path

    import yaml

    from fourds.config import ModelConfig
    from fourds.config.schema import parse

    configs = {
        path.stem: parse(
            ModelConfig, yaml.safe_load(path.read_text()), f"{path.parent.name}/{path.stem}"
        )
        for path in sorted(Path(folder).glob("*.yaml"))
    }
    if not configs:
        raise ConfigError(f"no model configs (*.yaml) in {folder}")
    return configs


def _params(args: argparse.Namespace) -> None:
    from fourds.config.compose import write_params

    out = args.out or DEFAULT_PARAMS  # without --out, an existing params.yaml is kept
    replace = args.out is not None
    params = write_params(out, args.overrides, args.experiments, replace)
    print(f"{out}: ladder {params.ladder.name}, scales {', '.join(params.ladder.scales)}")


def progress(message: str) -> None:
    """One line on stderr saying what a long command is doing now."""
    print(f"... {message}", file=sys.stderr, flush=True)


def _plan(args: argparse.Namespace) -> None:
    from fourds.plan.cluster import make_cluster
    from fourds.plan.evaluation import evaluation_memory
    from fourds.plan.feed import read_loader_rate
    from fourds.plan.ladder import plan_ladder
    from fourds.plan.measured import read_measured_steps
    from fourds.plan.table import format_evaluation, format_plan

    params = load_params(args.params)
    ladder = params.ladder_pretraining()
    cluster = make_cluster(args.gpu, args.gpus, args.interconnect)
    checkpointing = args.activation_checkpointing  # None: per scale, as the params pin it
    measured = read_measured_steps(args.gpu_results)
    plans = plan_ladder(ladder, cluster, args.mfu, checkpointing, args.headroom, progress, measured)
    loader = read_loader_rate(args.loader_results)
    print(
        format_plan(
            plans, ladder, cluster, args.mfu, checkpointing, args.headroom, loader, measured
        )
    )
    if args.evaluation:
        readout, readouts, fidelity = params.readout, params.readouts, params.fidelity
        extractor = params.model(fidelity.extractor_scale)
        stages = []
        for spec in ladder.scales:
            progress(f"measuring the readout and fidelity stages of {spec.scale}")
            stages.append(evaluation_memory(spec, readout, readouts, fidelity, extractor))
        print()
        print(format_evaluation(stages, readout, fidelity, cluster, args.headroom))
    if args.simulate:
        from fourds.plan.simulate import format_simulation

        print()
        print(format_simulation(plans, ladder, cluster.count, progress))


def _ship(args: argparse.Namespace) -> None:
    from pathlib import Path

    from fourds.shipped import ship

    params = load_params(args.params)
    paths = [Path(p) for p in (args.params, args.lock, args.runs, args.report, args.out)]
    missing = ship(params.study_layout(), *paths)
    if missing:
        print(f"not shipped (no results): {', '.join(missing)}", file=sys.stderr)
    print(f"{args.out}: the results of ladder {params.ladder.name}")


def _compare(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from fourds.records import EXECUTION_RECORD
    from fourds.report.stability import verdict_differences
    from fourds.shipped import compare, format_differences, pinned_at, ran_here
    from fourds.tolerances import EXACT, Contract, load_contract

    if args.tolerance is not None:
        contract = Contract.uniform(args.tolerance)
    elif args.contract != CONTRACT or Path(CONTRACT).is_file():
        contract = load_contract(args.contract)
    else:
        contract = EXACT
    with tempfile.TemporaryDirectory() as scratch:
        shipped = Path(args.shipped)
        if not shipped.is_dir():  # a git revision: the default's pin committed there
            shipped = pinned_at(args.shipped, Path(scratch))
        if not (shipped / "dvc.lock").is_file():
            raise FileNotFoundError(
                f"{shipped}: no shipped results (no dvc.lock); see `fourds ship`"
            )
        runs = Path(args.runs)
        differences = compare(shipped, runs, contract, args.only_regenerated)
        if not args.only_regenerated:
            differences += verdict_differences(shipped, runs)
    if differences:
        print(format_differences(differences))
    elif not ran_here(Path(args.runs)):
        print(
            f"{args.runs} holds no result regenerated here (no stage's {EXECUTION_RECORD}): "
            "this compared the pinned results with themselves; run `dvc repro --pull` first"
        )
    return 1 if differences else 0


def _repro_parallel(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fourds.pipeline.parallel import repro_parallel

    return repro_parallel(args.patterns, args.jobs, Path(args.logs), args.deadline, args.keep)


def _sweep(args: argparse.Namespace) -> None:
    from pathlib import Path

    from fourds.pipeline.sweep import sweep

    sweep(Path(args.repository).resolve(), args.name, args.grid, args.set, Path(args.out))


def _experiments(args: argparse.Namespace) -> None:
    from fourds.report.experiments import dvc_experiments, experiments_table, read_experiments

    print(experiments_table(read_experiments(dvc_experiments(args.repository))), end="")


def _answer(args: argparse.Namespace) -> None:
    from pathlib import Path

    from fourds.report.terminal import (
        REFERENCE,
        answer_text,
        as_committed,
        missing_results,
        read_front_page,
    )

    study, runs = load_params(args.params).study_layout(), Path(args.runs)
    missing = missing_results(study, runs)
    if missing:
        default = args.params == DEFAULT_PARAMS and args.runs == "runs"
        run_first = (
            f"{missing[0]}: not found ({len(missing)} results missing): run the study first "
            f"(`dvc repro --pull` for the default one), or read the shipped reference study's "
            f"answer: fourds answer --params {REFERENCE}/params.yaml --runs {REFERENCE}"
        )
        reference = REFERENCE / "params.yaml"
        if not default or not reference.is_file():
            raise FileNotFoundError(run_first)
        study, runs = load_params(str(reference)).study_layout(), REFERENCE
        if missing_results(study, runs):
            raise FileNotFoundError(run_first)
        print(f"runs/ has no results yet (run `dvc repro --pull`); the answer of {REFERENCE}:\n")
    elif args.params == DEFAULT_PARAMS and as_committed(study, runs):
        print("runs/ holds the pinned results git keeps (`dvc repro --pull` regenerates them):\n")
    print(answer_text(read_front_page(study, runs)), end="")


def _curate(args: argparse.Namespace) -> None:
    from fourds.stages import curate

    params = load_params(args.params)
    curate.run(params, args.data or params.curate.data, args.out, args.params)


def _pretrain(args: argparse.Namespace) -> int:
    from fourds.plan.fits import check_pretraining_fits
    from fourds.stages import pretrain

    params = load_params(args.params)
    check_pretraining_fits(params, [args.scale])  # before any work: one line, not a stall
    return pretrain.run(params, args.scale, args.curated, args.out, args.params)


def _export(args: argparse.Namespace) -> None:
    from fourds.train.export import export_checkpoint

    spec = load_params(args.params).pretraining(args.scale)
    print(export_checkpoint(spec, args.checkpoint, args.out))


def _readout(args: argparse.Namespace) -> None:
    from pathlib import Path

    from fourds.models.weights import WHERE_WEIGHTS
    from fourds.stages import readout

    if REGIMES[args.regime].pretrained and not Path(args.pretrained).exists():
        raise FileNotFoundError(f"{args.pretrained}: not found; {WHERE_WEIGHTS}")
    params = load_params(args.params)
    tasks = list(dict.fromkeys(args.task or params.readout.tasks))
    specs = [params.readout_spec(args.scale, task, args.regime) for task in tasks]
    readout.run(specs, params.runtime, args.curated, args.pretrained, args.out, args.params)


def _fidelity(args: argparse.Namespace) -> None:
    from fourds.stages import fidelity

    params = load_params(args.params)
    fidelity.run(params, args.scale, args.curated, args.pretrain_root, args.out, args.params)


def _report(args: argparse.Namespace) -> None:
    from fourds.stages import report

    params = load_params(args.params)
    print(report.run(params, args.notebook, args.runs, args.data_dvc, args.out, args.params))


def _convert(args: argparse.Namespace) -> None:
    from fourds.models.convert import convert, load_readout
    from fourds.models.vit import count_parameters
    from fourds.models.weights import load_encoder

    result = convert(args.npz, args.out, args.output_patch)
    encoder = load_encoder(result.encoder, args.attention)  # reloading checks the written file
    cfg, clip = result.model, f"{result.frames}x{result.size}x{result.size}"
    print(
        f"{result.encoder}: encoder, {count_parameters(encoder):,} params "
        f"(width {cfg.width}, depth {cfg.depth}, heads {cfg.heads}, mlp {cfg.mlp_dim}), "
        f"input {clip}"
    )
    if result.readout is None:
        print(f"no readout in {args.npz}")
    else:
        readout = load_readout(result.readout, args.attention)
        patch, channels = readout.layout
        print(
            f"{result.readout}: depth readout, {count_parameters(readout.module):,} params, "
            f"{readout.depth_output} depth per {'x'.join(map(str, patch))} patch"
            + (f", {channels} channels" if channels > 1 else "")
        )
    if result.ignored:
        print(f"left out {len(result.ignored)} arrays outside the encoder and the readout")


def patch_shape(text: str) -> tuple[int, int, int]:
    """TxHxW text, e.g. "2x8x8", -> (2, 8, 8), for argparse."""
    parts = text.split("x")
    if len(parts) != 3 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not TxHxW, e.g. 2x8x8")
    return tuple(int(part) for part in parts)


@dataclass(frozen=True)
class Argument:
    """One argument of a subcommand: the flags (or the positional's name) and the keyword
    arguments argparse's add_argument takes."""

    flags: tuple[str, ...]
    options: dict[str, Any]

    def with_help(self, help_text: str) -> Argument:
        """The same argument, explained for another subcommand."""
        return Argument(self.flags, {**self.options, "help": help_text})


def arg(*flags: str, **options: Any) -> Argument:
    """An argument written as the add_argument call it stands for."""
    return Argument(flags, options)


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, what it does (its help in `fourds --help` and its --help's
    description), the function that runs it, its arguments in --help's order, and the heavy
    libraries it imports, imported first and frozen (fourds.startup.import_frozen)."""

    name: str
    help: str
    handler: Callable[[argparse.Namespace], int | None]
    arguments: tuple[Argument, ...]
    libraries: tuple[str, ...] = ()


# The arguments several subcommands take, some explained per subcommand with .with_help
PARAMS = arg("--params", default=DEFAULT_PARAMS, help="the params file")
SCALE = arg("--scale", required=True, help="a scale of ladder.scales")
CURATED = arg("--curated", default="runs/curate/shards", help="curated shards")
OUTPUT_FOLDER = arg("--out", required=True, help="the output folder")
RUNS = arg("--runs", default="runs", help="the stages' outputs")
EXPERIMENTS = arg("--experiments", default="experiments", help="the config tree")

# The subcommands besides the stages'
TOOLS = (
    Command(
        "synth",
        "render the embedded synthetic 4D corpus",
        _synth,
        (
            arg("--out", default="data", help="the corpus folder to write"),
            arg("--seed", type=int, default=0, help="the world's random seed"),
            arg(
                "--renderer",
                choices=("numpy", "batched"),
                default="numpy",
                help="numpy: the pinned corpus's renderer, the same bytes anywhere; batched: the "
                "batched world in torch on --device (a GPU renders the corpus in seconds)",
            ),
            arg("--device", default="cpu", help="where the batched renderer runs (cpu, cuda)"),
            arg(
                "--videos",
                nargs="+",
                type=_split_count,
                help="videos per split, e.g. pretrain=16 readout-train=8 readout-test=8 (splits "
                "not named get none; default: the embedded corpus's 384, 64, 48)",
            ),
            arg("--frames", type=int, default=0, help="frames per video (0: the corpus's 32)"),
            arg("--size", type=int, default=0, help="frame size in pixels (0: the corpus's 64)"),
            arg(
                "--complexity",
                choices=list(WORLD_LEVELS),
                default="standard",
                help="the world's level: simple (1-2 slow bodies), standard (the embedded "
                "corpus's world), rich (5-6 faster bodies, finer textures), catalog-1k and "
                "catalog-8k (bodies and places of recurring kinds from a catalog)",
            ),
        ),
        TORCH,
    ),
    Command(
        "zoo",
        "parameter counts and FLOPs of every model config",
        _zoo,
        (
            arg("--models", default="experiments/model", help="folder of model configs"),
            arg("--frames", type=int, default=16, help="clip frames"),
            arg("--size", type=int, default=224, help="clip height and width"),
            arg("--mask-ratio", type=float, default=0.9, help="masked tubelets"),
            arg(
                "--ladders",
                action="store_true",
                help="each ladder's models at that ladder's own clip and mask ratio, composed from "
                "--experiments (instead of every model at --frames and --size)",
            ),
            EXPERIMENTS.with_help("the config tree (--ladders)"),
        ),
        TORCH,
    ),
    Command(
        "params",
        "compose experiments/ into params.yaml",
        _params,
        (
            arg("overrides", nargs="*", help="Hydra overrides, e.g. ladder=smoke"),
            EXPERIMENTS,
            arg(
                "--out",
                help=f"the params file to write (default: {DEFAULT_PARAMS}, only where it does not "
                "exist or already holds this composition)",
            ),
        ),
    ),
    Command(
        "plan",
        "memory, GPU count and time of every ladder scale; its readout and fidelity memory",
        _plan,
        (
            PARAMS.with_help("the ladder's params"),
            arg("--gpu", default="h100", choices=PLAN_GPUS, help="the GPU type"),
            arg("--gpus", type=int, default=256, help="GPUs in the cluster"),
            arg(
                "--interconnect",
                default="infiniband",
                choices=PLAN_INTERCONNECTS,
                help="how the GPUs are connected",
            ),
            arg(
                "--mfu",
                type=float,
                default=0.45,
                help="model FLOPs utilisation assumed where no GPU measurement applies",
            ),
            arg(
                "--activation-checkpointing",
                action=argparse.BooleanOptionalAction,
                default=None,
                help="on or off for every scale (None: pretrain.activation_checkpointing)",
            ),
            arg("--headroom", type=float, default=0.1, help="fraction of GPU memory kept free"),
            arg(
                "--loader-results",
                default="benchmarks/results/loader_throughput.json",
                help="the loader benchmark's result file, for loader cores per GPU (if present)",
            ),
            arg(
                "--gpu-results",
                default="benchmarks/results/gpu/summary.json",
                help="benchmarks/gpu_step.py's summary: measured step times (if present)",
            ),
            arg(
                "--evaluation",
                action=argparse.BooleanOptionalAction,
                default=True,
                help="the readout and fidelity stages' peak memory on one GPU, measured on fake "
                "tensors",
            ),
            arg(
                "--simulate",
                action="store_true",
                help="also run every scale's real step on a simulated cluster (fake process "
                "group and fake tensors) and print its peak memory beside the plan's",
            ),
        ),
        TRAINING,
    ),
    Command(
        "ship",
        "copy a run's results, lock, report and checkpoints into a folder git keeps",
        _ship,
        (
            PARAMS.with_help("the run's params"),
            arg("--lock", default="dvc.lock", help="the run's DVC lock"),
            RUNS,
            arg("--report", default="reports/out", help="the report stage's output"),
            arg("--out", required=True, help="the folder to write, e.g. reports/reference"),
        ),
    ),
    Command(
        "compare",
        "every number of a regeneration that differs from shipped results beyond its "
        "tolerances, and every verdict comparison that moved more than a quarter of its "
        "interval's half-width (none: prints nothing, exit 0; else a table, exit 1)",
        _compare,
        (
            arg(
                "shipped",
                help="a folder `fourds ship` wrote (e.g. reports/reference), or a git revision "
                "whose committed pin of the default study is compared (e.g. HEAD)",
            ),
            RUNS.with_help("the regeneration's stage outputs"),
            arg(
                "--contract",
                default=CONTRACT,
                help="the tolerances per stage and task (exact where the default file does not "
                "exist)",
            ),
            arg(
                "--tolerance",
                type=float,
                default=None,
                help="instead of the tolerances file: one absolute difference still equal for "
                "every number",
            ),
            arg(
                "--only-regenerated",
                action="store_true",
                help="compare only the stages whose folder under --runs holds results (a "
                "partial regeneration), not every stage shipped",
            ),
        ),
    ),
    Command(
        "answer",
        "the report's answer in the terminal: what the study shows, and per task each scale's "
        "readout against its baseline, the control and the smallest scale",
        _answer,
        (
            PARAMS.with_help("the study's params"),
            RUNS.with_help("its stage outputs, or a shipped study's folder"),
        ),
    ),
    Command(
        "experiments",
        "this repository's DVC experiments, a row each: the params that tell them apart, each "
        "task's headline at the largest scale and its held-out loss",
        _experiments,
        (arg("--repository", default=".", help="the DVC repository whose experiments to list"),),
    ),
    Command(
        "repro-parallel",
        "`dvc repro` of a pipeline's stages several at a time, each in a copy of the repository "
        "sharing its DVC cache, for the repository's own `dvc repro` to take from DVC's run cache",
        _repro_parallel,
        (
            arg("patterns", nargs="+", help="stage names or fnmatch patterns, in the order to run"),
            arg("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="workers"),
            arg("--logs", default="parallel_repro", help="each stage's output and the summary"),
            arg(
                "--deadline",
                type=float,
                default=float("inf"),
                help="epoch seconds: a stage still running then is stopped",
            ),
            arg(
                "--keep",
                action="append",
                default=[],
                help="a glob of run records DVC does not track, copied back (repeatable)",
            ),
        ),
    ),
    Command(
        "sweep",
        "a pretraining sweep as DVC experiments (`dvc exp run --temp`, a grid point each): every "
        "scale's held-out loss and curve per point, the sweep's JSON file and figures",
        _sweep,
        (
            arg("--name", required=True, help="the sweep's name: its file and experiments"),
            arg(
                "--grid",
                action="append",
                default=[],
                help="key=v1,v2,... (repeatable; the first is the figures' axis; default: "
                "pretrain.lr=0.001)",
            ),
            arg(
                "--set",
                action="append",
                default=[],
                help="a fixed override of every point, e.g. ladder=reference (repeatable)",
            ),
            arg(
                "--repository",
                default=".",
                help="the DVC repository to sweep in, one that has run the main job",
            ),
            arg("--out", default="reports/sweeps", help="the folder of the sweep's files"),
        ),
    ),
    Command(
        "convert",
        "official 4DS .npz checkpoint -> weights",
        _convert,
        (
            arg("--npz", required=True, help="an official representations4d .npz"),
            arg("--out", required=True, help="the encoder weights file to write"),
            arg(
                "--output-patch",
                type=patch_shape,
                default=None,
                help="the depth head's pixels per query, TxHxW, where its arrays leave it open "
                "(None: read from the arrays)",
            ),
            arg(
                "--attention",
                default="sdpa",
                choices=ATTENTION_BACKENDS,
                help="the backend that reloads the written files to check them",
            ),
        ),
        TORCH,
    ),
)

# One subcommand per stage (fourds.stages), each reading the params file first
STAGES = (
    Command(
        "curate",
        "decode videos, cut clips, write shards and a manifest",
        _curate,
        (
            PARAMS,
            arg(
                "--data",
                default=None,
                help="folder of videos, <folder>/<split>/... (None: curate.data)",
            ),
            arg("--out", default="runs/curate", help="the output folder"),
        ),
    ),
    Command(
        "pretrain",
        "MAE-pretrain one scale of the ladder",
        _pretrain,
        (PARAMS, SCALE, CURATED, OUTPUT_FOLDER),
        TRAINING,
    ),
    Command(
        "export",
        "write single-file weights from a resumable checkpoint",
        _export,
        (
            PARAMS,
            SCALE.with_help("the checkpoint's scale"),
            arg("--checkpoint", required=True, help="a resume/*/step-N dir"),
            arg("--out", required=True, help="the weights file to write"),
        ),
        TORCH,
    ),
    Command(
        "readout",
        "train and score one scale's readouts in one regime",
        _readout,
        (
            PARAMS,
            SCALE,
            arg(
                "--task",
                action="append",
                help="a task of readout.tasks (again for another; default: every one)",
            ),
            arg(
                "--regime", default="frozen", choices=tuple(REGIMES), help="one of readout.regimes"
            ),
            CURATED,
            arg(
                "--pretrained",
                required=True,
                help="the pretrain stage's folder (its checkpoint.pt), or a weights file",
            ),
            OUTPUT_FOLDER,
        ),
        TRAINING,
    ),
    Command(
        "fidelity",
        "PSNR, FID and KID of one scale's MAE reconstructions",
        _fidelity,
        (
            PARAMS,
            SCALE,
            CURATED,
            arg("--pretrain-root", default="runs/pretrain", help="pretrain stages' parent"),
            OUTPUT_FOLDER,
        ),
        TRAINING,
    ),
    Command(
        "report",
        "execute the report notebook into HTML",
        _report,
        (
            PARAMS,
            arg("--notebook", default="reports/scaling.ipynb", help="the report"),
            RUNS,
            arg("--data-dvc", default="data.dvc", help="the corpus's DVC file"),
            arg("--out", default="reports/out", help="the output folder"),
        ),
    ),
)

COMMANDS = TOOLS + STAGES  # in `fourds --help`'s order


def build_parser() -> argparse.ArgumentParser:
    """`fourds` with a subcommand per entry of COMMANDS, whose --help says what it does and
    shows every option's default."""
    parser = argparse.ArgumentParser(prog="fourds", description=__doc__)
    parser.add_argument("--version", action="version", version=f"fourds {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        subparser = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.help,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        for argument in command.arguments:
            subparser.add_argument(*argument.flags, **argument.options)
    return parser


def one_line(error: Exception) -> str:
    """The message of `error`; for one re-raised from a data-loading thread or worker process
    (torch and torchdata put "Caught <type> in ...", then the worker's traceback, before it), the
    original message alone."""
    message = str(error)
    if message.startswith("Caught ") and "\nOriginal Traceback" in message:
        last = message.rstrip().splitlines()[-1]  # "<module>.<type>: <original message>"
        return last.split(": ", 1)[-1]
    return message


# What `fourds` reports in one line instead of a traceback: fourds' own errors
# (fourds.errors) and the OS errors a command's inputs and outputs can raise.
EXPECTED = (*EXPECTED_ERRORS, FileNotFoundError, FloatingPointError, PermissionError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = next(each for each in COMMANDS if each.name == args.command)
    import_frozen(command.libraries)
    try:
        if command in STAGES:
            from fourds.preflight import check_before_stage

            check_before_stage()  # under `dvc repro`: what a later stage would refuse, now
        return command.handler(args) or 0
    except Exception as error:
        if isinstance(error, EXPECTED):
            message = one_line(error)
        elif is_out_of_space(error):  # a write outside fourds.atomic's (a library's own files)
            first = str(error).strip().splitlines()[0]
            message = (
                f"no space left on a disk it writes ({first}): free some space, then run again"
            )
        else:
            raise
        print(f"fourds {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
