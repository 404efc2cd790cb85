"""The pretraining loss order of a ladder over pretraining seeds.

Each scale of the ladder is pretrained by the pretrain stage itself (`fourds pretrain`) with
pretrain.seed set to each of --seeds, --jobs runs at a time (each with the params' own
runtime.threads), and the final losses are compared along the ladder: for every seed, whether
each scale's loss is below the next smaller one's, and each scale's loss relative to the
smallest's. A study already shipped (--shipped, e.g. reports/reference) gives its own seed's
losses from its `pretrain/<scale>/metrics.json`; they are read beside the new seeds', not
rerun (its pretraining ran under an older commit: the code since then changes pretraining in
its rounding only, about 1e-6 of the loss over 2560 steps, study log section 31).

`--quick` pretrains the smoke ladder for a few steps on a tiny corpus instead.

Run: python benchmarks/pretrain_seeds.py --params P --curated SHARDS [--seeds 1,2]
     [--shipped reports/reference] [--jobs 2] [--quick]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import harness
import torch
import yaml

from fourds import layout
from fourds.config import load_params

NAME = "pretrain_seeds"


def seeded_params(params: Path, seed: int, folder: Path) -> Path:
    """`params` with pretrain.seed = `seed`, written into `folder`."""
    raw = yaml.safe_load(params.read_text())
    raw["pretrain"]["seed"] = seed
    path = folder / f"params-seed{seed}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def pretrain(params: Path, scale: str, curated: Path, out: Path) -> float:
    """One `fourds pretrain` run in its own process; its final loss."""
    command = [sys.executable, "-m", "fourds.cli", "pretrain", "--params", str(params),
               "--scale", scale, "--curated", str(curated), "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return yaml.safe_load((out / "metrics.json").read_text())["loss"]


def loss_order(losses: dict[str, float], scales: list[str]) -> dict:
    """Whether the loss falls at every step of the ladder, and each loss over the smallest's."""
    values = [losses[scale] for scale in scales]
    falls = all(larger < smaller for smaller, larger in zip(values, values[1:], strict=False))
    relative = {scale: losses[scale] / values[0] - 1 for scale in scales}
    return {"losses": losses, "falls_monotonically": falls, "over_smallest": relative}


def quick_setup(root: Path) -> tuple[Path, Path]:
    """The smoke ladder's params, shortened to a few steps, and a tiny corpus curated with
    them; both made in this process (`fourds params` run here, curate.workers 0: no processes
    that each import torch again besides the pretraining runs)."""
    from fourds.cli import main as fourds_cli
    from fourds.data.corpus import WorldSpec, write_corpus
    from fourds.data.curate import curate

    params = root / "params.yaml"
    if fourds_cli(["params", "ladder=smoke", "--out", str(params)]) != 0:
        raise RuntimeError("fourds params ladder=smoke failed")
    raw = yaml.safe_load(params.read_text())
    raw["curate"].update(clip_frames=4, pretrain_frames=12, resolution=16, workers=0)
    raw["pretrain"].update(steps=2, warmup_steps=1, batch_size=2, log_every=1, checkpoint_every=0)
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    videos = {"pretrain": 2, "readout-train": 1, "readout-test": 1}
    write_corpus(root / "corpus", WorldSpec(seed=7, frames=12, size=32, fps=12, videos=videos))
    curate(root / "corpus", root / "curate", load_params(params).curate)
    return params, root / "curate" / "shards"


def main() -> None:
    started = time.perf_counter()
    args = harness.parse_args(__doc__.splitlines()[0], add_arguments)
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        if args.quick:
            params, curated = quick_setup(scratch)
        else:
            params, curated = args.params.resolve(), args.curated.resolve()
        loaded = load_params(params)
        scales = list(loaded.ladder.scales)
        seeds = [int(seed) for seed in args.seeds.split(",")]
        seeded = {seed: seeded_params(params, seed, scratch) for seed in seeds}  # before any run
        runs = [(seed, scale) for seed in seeds for scale in reversed(scales)]  # largest first

        def run(seed_scale: tuple[int, str]) -> float:
            seed, scale = seed_scale
            return pretrain(seeded[seed], scale, curated, scratch / f"seed{seed}" / scale)

        with ThreadPoolExecutor(args.jobs) as pool:
            finals = dict(zip(runs, pool.map(run, runs), strict=True))
        by_seed = {seed: {scale: finals[seed, scale] for scale in scales} for seed in seeds}
        shipped = {}
        if args.shipped and not args.quick:
            shipped_seed = yaml.safe_load((args.shipped / "params.yaml").read_text())
            shipped_seed = shipped_seed["pretrain"]["seed"]
            losses = {scale: yaml.safe_load((args.shipped / layout.pretrain(scale).folder /
                                             "metrics.json").read_text())["loss"]
                      for scale in scales}  # fmt: skip
            by_seed[shipped_seed] = losses
            shipped = {"folder": str(args.shipped), "seed": shipped_seed}
        results = {f"seed_{seed}": loss_order(by_seed[seed], scales) for seed in sorted(by_seed)}
        config = {"params": "quick" if args.quick else str(args.params), "scales": scales,
                  "new_seeds": seeds, "shipped": shipped, "jobs": args.jobs,
                  "steps": loaded.pretrain.steps}  # fmt: skip
    harness.write_result(NAME, args.out, torch.device("cpu"), config, results, started)


def add_arguments(parser) -> None:
    parser.add_argument("--params", type=Path, default=None, help="the ladder's params.yaml")
    parser.add_argument("--curated", type=Path, default=None, help="its curated shards folder")
    parser.add_argument("--seeds", default="1", help="comma-separated pretrain.seed values")
    parser.add_argument(
        "--shipped", type=Path, default=None, help="a shipped study whose seed is read, not rerun"
    )
    parser.add_argument("--jobs", type=int, default=2, help="pretraining runs at a time")


if __name__ == "__main__":
    main()
