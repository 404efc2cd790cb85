"""A readout trained once per seed (readouts.<task>.seeds, from readout.seed) and each seed
scored on the test clips.

A frozen encoder's features are computed once for every seed, and its seeds train
(`seed_training`): on a GPU as one batched model (fourds.evaluate.batched_seeds: a step's
kernels launched once for all seeds); on a CPU with more than one thread side by side, each in
a process of its own at one thread (fourds.evaluate.forked): on two cores the default study's
readouts train about a tenth sooner than at two threads seed after seed (none sooner for boxes;
benchmarks/readout_seeds.py, docs/research/timings.md).
Each seed's readout, its optimizer and the global generator's state are made in the stage, seed
after seed, before any trains, so a seed's numbers are a function of its seed any way (up to
the rounding of its thread count, or of the batched kernels). A fine-tuned encoder is
restarted from the same weights for each seed, one after another, and each seed is scored as
it left it.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from fourds.config import ReadoutSpec
from fourds.config.regimes import REGIMES
from fourds.data.spill import HostBudget
from fourds.evaluate.batched_seeds import batchable, train_batched
from fourds.evaluate.forked import side_by_side
from fourds.evaluate.readout import (
    Features,
    build_readout,
    score,
    train_readout,
    training_optimizer,
)
from fourds.evaluate.readout_clips import ReadoutClips
from fourds.evaluate.shared_features import FeatureStore
from fourds.evaluate.tasks import Task
from fourds.evaluate.tasks.base import Evaluation
from fourds.models.readout import AttentionReadout
from fourds.models.vit import VideoViT
from fourds.records import PartTimer

Targets = dict[str, torch.Tensor]


@dataclasses.dataclass
class SeedRun:
    """One seed's readout as built (`start`) and trained: its optimizer, and the global
    generator's state right after it was built (what its training starts from)."""

    seed: int
    readout: AttentionReadout
    optimizer: torch.optim.Optimizer
    generator_state: torch.Tensor

    @classmethod
    def start(
        cls, seed: int, encoder: VideoViT, task: Task, spec: ReadoutSpec, targets: Targets | None,
        device: torch.device,
    ) -> SeedRun:  # fmt: skip
        """Seed `seed`'s new readout (from the baseline on `targets` where the task starts
        there; see build_readout) and its optimizer. The readout is drawn on the host from
        the CPU generator, so a seed's readout starts the same on any device."""
        torch.manual_seed(seed)
        with torch.device("cpu"):
            readout = build_readout(encoder, task, spec, targets)
        readout = readout.to(device)
        optimizer = training_optimizer(readout, encoder, spec)
        return cls(seed, readout, optimizer, torch.get_rng_state())

    def trainer(
        self, task: Task, features: Features, targets: Targets, spec: ReadoutSpec,
        device: torch.device,
    ) -> Callable[[], tuple[list[float], dict[str, torch.Tensor]]]:  # fmt: skip
        """The training of this seed (`train_readout`), as a job: its losses per step and the
        trained readout's state."""

        def train() -> tuple[list[float], dict[str, torch.Tensor]]:
            torch.set_rng_state(self.generator_state)
            losses = train_readout(
                self.readout, self.optimizer, task, features, targets, spec, device, self.seed
            )
            return losses, self.readout.state_dict()

        return train


SEED_TRAININGS = ("one_after_another", "side_by_side", "batched")


def seed_training(spec: ReadoutSpec, device: torch.device) -> str:
    """How the seeds of `spec` train: "batched" (one model, fourds.evaluate.batched_seeds) for
    several seeds of a frozen encoder on a GPU; "side_by_side" (a forked process each) for
    them on a CPU with more than one thread; else "one_after_another" in this process (a
    fine-tuned encoder is restarted for each seed)."""
    if spec.own.seeds == 1 or REGIMES[spec.regime].trains_encoder:
        return "one_after_another"
    if device.type == "cuda":
        return "batched"
    return "side_by_side" if torch.get_num_threads() > 1 else "one_after_another"


def train_seeds(
    spec: ReadoutSpec,
    encoder: VideoViT,
    clips: ReadoutClips,
    task: Task,
    targets: tuple[Targets, Targets],
    device: torch.device,
    budget: HostBudget,
    store: FeatureStore,
) -> tuple[list[Evaluation], dict[str, object], PartTimer]:
    """Train readouts.<task>.seeds readouts of `task` (readout.seed onwards) on the train clips
    and score each on the test clips, with `targets` (train, test) the task's targets of each
    (see the module docstring), a frozen encoder's features from `store` (computed once for
    the stage's tasks): each seed's evaluation, metrics.json's training fields and the seconds
    spent encoding, training and scoring."""
    cfg, task_cfg, regime = spec.shared, spec.own, REGIMES[spec.regime]
    train_targets, test_targets = targets
    start = train_targets if cfg.start_at_baseline else None
    seeds = range(cfg.seed, cfg.seed + task_cfg.seeds)
    timer = PartTimer()
    with timer.part("encode"):
        if cfg.cache_features and not regime.trains_encoder:
            train_features = store.features(
                encoder, clips.train["video"], clips.num_blocks, task_cfg.batch_size
            )
        else:  # the encoder runs on every batch
            train_features = Features(
                encoder, clips.train["video"], clips.num_blocks, device, False,
                task_cfg.batch_size, budget,
            )  # fmt: skip
    evaluations, losses = [], []
    if regime.trains_encoder:  # every seed fine-tunes the same encoder, one after another
        initial = copy.deepcopy(encoder.state_dict())
        for seed in seeds:
            encoder.load_state_dict(initial)
            run = SeedRun.start(seed, encoder, task, spec, start, device)
            with timer.part("train"):  # with the features of the encoder as it trains
                losses.append(run.trainer(task, train_features, train_targets, spec, device)()[0])
            with timer.part("encode"):  # this seed's fine-tuned encoder
                features = clips.test_features(encoder, device, task_cfg.batch_size, budget)
            with timer.part("score"):
                evaluations.append(
                    score(run.readout, task, features, test_targets, task_cfg.batch_size)
                )
    else:  # every seed reads the same features
        with timer.part("encode"):
            features = store.features(
                encoder, clips.test["video"], clips.num_blocks, task_cfg.batch_size
            )
        training = seed_training(spec, device)
        built = batchable(spec) if training == "batched" else spec
        runs = [SeedRun.start(seed, encoder, task, built, start, device) for seed in seeds]
        with timer.part("train"):
            if training == "batched":  # trained in place, as one model
                losses = train_batched(
                    [run.readout for run in runs], runs[0].optimizer, list(seeds), task,
                    train_features, train_targets, spec, device,
                )  # fmt: skip
            else:
                jobs = [
                    run.trainer(task, train_features, train_targets, spec, device) for run in runs
                ]
                if training == "side_by_side":
                    trained = side_by_side(jobs, [f"readout seed {s}" for s in seeds])
                else:
                    trained = [job() for job in jobs]
                for run, (seed_losses, state) in zip(runs, trained, strict=True):
                    run.readout.load_state_dict(state)  # trained in another process, or here
                    losses.append(seed_losses)
        for run in runs:
            with timer.part("score"):
                evaluations.append(
                    score(run.readout, task, features, test_targets, task_cfg.batch_size)
                )
    final_losses = [float(np.mean(each[-max(1, len(each) // 10) :])) for each in losses]
    trained_fields = {
        "train_clips": len(clips.train["video"]),
        "pretrain_clips": clips.extra,
        **seed_summary(final_losses, evaluations, task.headline),
    }
    return evaluations, trained_fields, timer


def seed_summary(
    final_losses: list[float], evaluations: list[Evaluation], headline: str
) -> dict[str, object]:
    """metrics.json's training fields: the final training loss (the mean over the last tenth of
    the steps; over seeds, their mean), and with several seeds each seed's loss and headline."""
    summary: dict[str, object] = {"final_train_loss": float(np.mean(final_losses))}
    if len(final_losses) > 1:
        summary["seeds"] = len(final_losses)
        summary["final_train_losses"] = final_losses
        summary["seed_headlines"] = [evaluation.metrics[headline] for evaluation in evaluations]
    return summary


def mean_metrics(seeds: list[dict]) -> dict:
    """Each metric's mean over the seeds' evaluations (the one seed's metrics as they are), a
    group of metrics (a dict, as fourds.evaluate.perception_test.OFFICIAL) metric by metric."""
    if len(seeds) == 1:
        return seeds[0]
    return {
        key: mean_metrics([metrics[key] for metrics in seeds])
        if isinstance(seeds[0][key], dict)
        else float(np.mean([metrics[key] for metrics in seeds]))
        for key in seeds[0]
    }
