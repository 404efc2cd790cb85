"""A readout trained once per seed (readouts.<task>.seeds, from readout.seed) and each seed
scored on the test clips: a frozen encoder's features computed once for every seed, a
fine-tuned one restarted from the same weights for each."""

from __future__ import annotations

import copy

import numpy as np
import torch

from fourds.config import ReadoutSpec
from fourds.config.regimes import REGIMES
from fourds.data.spill import HostBudget
from fourds.evaluate.readout import Features, build_readout, score, train_readout
from fourds.evaluate.readout_clips import ReadoutClips
from fourds.evaluate.tasks import Task
from fourds.evaluate.tasks.base import Evaluation
from fourds.models.vit import VideoViT
from fourds.records import PartTimer


def train_seeds(
    spec: ReadoutSpec,
    encoder: VideoViT,
    clips: ReadoutClips,
    task: Task,
    targets: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]],
    device: torch.device,
    budget: HostBudget,
) -> tuple[list[Evaluation], dict[str, object], PartTimer]:
    """Train readouts.<task>.seeds readouts of `task` (readout.seed onwards) on the train clips
    and score each on the test clips, with `targets` (train, test) the task's targets of each:
    each seed's evaluation, metrics.json's training fields and the seconds spent encoding,
    training and scoring. A frozen encoder's features are computed once for every seed; a
    fine-tuned one starts each seed from the same weights and is scored as that seed left
    it."""
    cfg, task_cfg, regime = spec.shared, spec.own, REGIMES[spec.regime]
    train_targets, test_targets = targets
    start = train_targets if cfg.start_at_baseline else None
    cache = cfg.cache_features and not regime.trains_encoder
    timer = PartTimer()
    with timer.part("encode"):
        train_features = Features(
            encoder, clips.train["video"], clips.num_blocks, device, cache, task_cfg.batch_size,
            budget,
        )  # fmt: skip
    initial = copy.deepcopy(encoder.state_dict()) if regime.trains_encoder else None
    features = None
    if initial is None:  # the encoder stays as it is: every seed reads the same features
        with timer.part("encode"):
            features = clips.test_features(encoder, device, task_cfg.batch_size, budget)
    evaluations, final_losses = [], []
    for seed in range(cfg.seed, cfg.seed + task_cfg.seeds):
        if initial is not None:  # every seed fine-tunes the same encoder
            encoder.load_state_dict(initial)
        torch.manual_seed(seed)
        readout = build_readout(encoder, task, spec, start).to(device)
        with timer.part("train"):  # with the features of uncached clips
            losses = train_readout(
                readout, encoder, task, train_features, train_targets, spec, device, seed
            )
        final_losses.append(float(np.mean(losses[-max(1, len(losses) // 10) :])))
        if initial is not None:  # this seed's fine-tuned encoder
            with timer.part("encode"):
                features = clips.test_features(encoder, device, task_cfg.batch_size, budget)
        with timer.part("score"):
            evaluation = score(readout, task, features, test_targets, task_cfg.batch_size)
        evaluations.append(evaluation)
    trained = {
        "train_clips": len(clips.train["video"]),
        "pretrain_clips": clips.extra,
        **seed_summary(final_losses, evaluations, task.headline),
    }
    return evaluations, trained, timer


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
