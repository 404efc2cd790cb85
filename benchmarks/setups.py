"""Shapes, configs and training steps the benchmarks share.

Configs come from the project's own Hydra tree (experiments/), composed the way
`fourds params <overrides> --out FILE` does and loaded back with `fourds.config.load_params`, so
a benchmark always measures what the ladders pin. `--quick` swaps in `TINY`, a shape that runs
in milliseconds.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path

import harness
import torch

from fourds.config import MAEConfig, ModelConfig, Params, load_params
from fourds.models.factory import build_mae
from fourds.models.init import initialise
from fourds.models.mae import MaskedAutoencoder

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@dataclasses.dataclass(frozen=True)
class Shape:
    """An encoder architecture and the clip it sees: [frames, size, size, 3]."""

    name: str
    model: ModelConfig
    frames: int
    size: int

    @property
    def tokens(self) -> int:
        """Tokens per clip (the encoder's full token grid)."""
        t, p, q = self.model.tubelet
        return (self.frames // t) * (self.size // p) * (self.size // q)

    def describe(self) -> dict:
        """JSON-ready description: the model config, the clip and its token count."""
        return {
            "name": self.name,
            "model": dataclasses.asdict(self.model),
            "clip": [self.frames, self.size, self.size, 3],
            "tokens": self.tokens,
        }


# --quick: 2 blocks of width 64 on 4x32x32 clips (32 tokens); coarse query patches still fit.
TINY = Shape(
    "tiny",
    ModelConfig(
        width=64,
        depth=2,
        heads=4,
        mlp_dim=256,
        tubelet=(2, 8, 8),
        qk_norm=False,
        parallel_blocks=False,
        bias=True,
    ),
    frames=4,
    size=32,
)


def compose_ladder(*overrides: str) -> Params:
    """The params `fourds params <overrides> --out FILE` writes, read back with load_params
    (Hydra is imported here, not with this module)."""
    from fourds.config.compose import write_params

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "params.yaml"
        write_params(path, list(overrides), EXPERIMENTS)
        return load_params(path)


def ladder_shape(params: Params, scale: str) -> Shape:
    """The encoder of ladder scale `scale` on the clips the params' curate section makes."""
    return Shape(scale, params.model(scale), params.curate.clip_frames, params.curate.resolution)


def tiny_mae(mae: MAEConfig) -> MAEConfig:
    """`mae` with its MAE-ST decoder shrunk to the tiny shape (width 32, 1 block, 4 heads)."""
    return dataclasses.replace(mae, decoder_width=32, decoder_depth=1, decoder_heads=4)


def four_ds_b(quick: bool) -> tuple[Shape, MAEConfig]:
    """The 4DS-B shape with the 4ds ladder's MAE config; with `quick`, the tiny stand-ins."""
    params = compose_ladder("ladder=4ds")
    if quick:
        return TINY, tiny_mae(params.mae)
    return ladder_shape(params, "4ds_b"), params.mae


def initial_mae(
    shape: Shape, mae: MAEConfig, backend: str, device: torch.device, seed: int = 0
) -> MaskedAutoencoder:
    """fourds' MAE of `shape` (fourds.models.factory.build_mae), initialised from `seed`
    (fourds.models.init, as pretraining starts it) on `device`."""
    model = build_mae(shape.model, mae, shape.frames, shape.size, backend)
    return initialise(model, seed, mae.residual_init).to(device).train()


def random_video(shape: Shape, batch: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """Uniform noise clips, float [batch, frames, size, size, 3] in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    video = torch.rand(batch, shape.frames, shape.size, shape.size, 3, generator=generator)
    return video.to(device)


def adamw(
    model: torch.nn.Module, lr: float = 1e-4, weight_decay: float = 0.05
) -> torch.optim.AdamW:
    """AdamW as the pretrain stage configures it (betas 0.9, 0.95)."""
    return torch.optim.AdamW(
        model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95)
    )


def training_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable[[], torch.Tensor]
) -> Callable[[], torch.Tensor]:
    """One pretraining step: zero the gradients, forward (`loss_fn`), backward, AdamW step.

    Returns a function that runs the step and returns the (detached) loss. No gradient clipping (the
    pretrain stage clips; that costs one norm over the parameters, the same for every variant).
    """

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def mae_step(
    model: MaskedAutoencoder, video: torch.Tensor, optimizer: torch.optim.Optimizer, seed: int = 0
) -> Callable[[], torch.Tensor]:
    """A `training_step` of fourds' MAE on `video` [B, T, H, W, 3], fresh masks every step."""
    generator = torch.Generator().manual_seed(seed)

    def loss_fn() -> torch.Tensor:
        keep_index, mask = model.sample_masks(video.shape[0], generator)
        loss, _ = model(video, keep_index, mask)
        return loss

    return training_step(model, optimizer, loss_fn)


def visible_tokens(tokens: int, mask_ratio: float) -> int:
    """Tokens the encoder sees per clip at `mask_ratio` (as fourds.models.mae.random_masking)."""
    return max(1, round(tokens * (1.0 - mask_ratio)))


def quick_study(root: Path) -> tuple[Path, Path, str]:
    """A tiny study under `root` (params.yaml, runs/curate/shards, runs/pretrain/<scale>): the
    smoke ladder's params on a tiny corpus, curated in this process (curate.workers 0: the same
    shards, without worker processes that each import torch again), a tiny untrained encoder of
    its largest scale; the study, its params and that scale."""
    import yaml

    from fourds.cli import main as fourds_cli
    from fourds.data.corpus import WorldSpec, write_corpus
    from fourds.data.curate import curate
    from fourds.models.factory import initial_mae
    from fourds.models.weights import save_weights

    params = root / "params.yaml"
    assert fourds_cli(["params", "ladder=smoke", "--out", str(params)]) == 0
    raw = yaml.safe_load(params.read_text())
    raw["curate"].update(clip_frames=4, pretrain_frames=12, resolution=16, workers=0)
    for each in raw["readouts"].values():
        each.update(steps=4, batch_size=2, width=16, heads=2, pretrain_clips=2, seeds=2)
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    videos = {"pretrain": 2, "readout-train": 2, "readout-test": 1}
    write_corpus(root / "corpus", WorldSpec(seed=7, frames=12, size=32, fps=12, videos=videos))
    loaded = load_params(params)
    curate(root / "corpus", root / "runs/curate", loaded.curate)
    scale = loaded.ladder.scales[-1]
    spec = loaded.pretraining(scale)
    save_weights(
        root / "runs/pretrain" / scale / "checkpoint.pt", initial_mae(spec).state_dict(), spec
    )
    return root, params, scale


# --quick's readout tasks where --tasks names none: one headline better lower (depth's AbsRel),
# one better higher (tracking's AJ), so both signs of a gain are exercised
QUICK_TASKS = ("depth", "tracking")


def add_tasks_argument(parser) -> None:
    """--tasks: the readout tasks, comma-separated (default: every one; --quick: QUICK_TASKS)."""
    parser.add_argument(
        "--tasks",
        default="",
        help=f"comma-separated tasks (default: all; --quick: {','.join(QUICK_TASKS)})",
    )


def chosen_tasks(tasks: str, quick: bool, study_tasks) -> list[str]:
    """The tasks --tasks names, or else QUICK_TASKS under --quick, or else `study_tasks`."""
    if tasks:
        return tasks.split(",")
    return list(QUICK_TASKS if quick else study_tasks)


def add_study_argument(parser) -> None:
    """--study: the folder of a study `dvc repro` ran (its params.yaml and runs/), for the
    benchmarks that read a study's stage outputs."""
    parser.add_argument(
        "--study",
        type=Path,
        default=harness.REPO,
        help="a folder holding params.yaml and the study's runs/ (default: the repository)",
    )
