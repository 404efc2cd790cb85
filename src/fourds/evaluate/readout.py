"""The `readout` stage: a frozen encoder, an attention readout trained on one task.

The encoder runs once per clip (no augmentation, so its features can be cached); the readout
trains on the readout-train split and is scored on the readout-test split.

Outputs in `out_dir`: metrics.json (the task's metrics plus the encoder's parameter count)
and run.yaml.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fourds.config import Params, ReadoutConfig
from fourds.data.curate import load_split
from fourds.evaluate.depth import DepthTask
from fourds.models.readout import AttentionReadout, readout_block_count
from fourds.models.vit import VideoViT, count_parameters
from fourds.models.weights import load_encoder
from fourds.records import write_json, write_run_record
from fourds.runtime import setup_runtime

TASKS = {"depth": DepthTask}


@torch.no_grad()
def extract_features(
    encoder: VideoViT, videos: np.ndarray, num_blocks: int, device: torch.device, batch_size: int
) -> torch.Tensor:
    """Frozen features of block `num_blocks`: uint8 [N, T, H, W, 3] -> [N, T'*h*w, D] on CPU."""
    parts = []
    for start in range(0, len(videos), batch_size):
        video = torch.from_numpy(videos[start : start + batch_size]).to(device).float().div_(255.0)
        parts.append(encoder(video, num_blocks=num_blocks).cpu())
    return torch.cat(parts)


def train_readout(
    readout: AttentionReadout,
    task,
    features: torch.Tensor,
    targets: torch.Tensor,
    cfg: ReadoutConfig,
    device: torch.device,
    label: str,
) -> None:
    """AdamW with cosine decay on cached features; batches drawn with replacement."""
    optimizer = torch.optim.AdamW(readout.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.steps)
    generator = torch.Generator().manual_seed(cfg.seed)
    readout.train()
    for _ in (bar := tqdm(range(cfg.steps), desc=f"readout {label}", unit="step")):
        index = torch.randint(len(features), (cfg.batch_size,), generator=generator)
        loss = task.loss(readout(features[index].to(device)), targets[index].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")


@torch.no_grad()
def predict(
    readout: AttentionReadout, task, features: torch.Tensor, device: torch.device, batch_size: int
) -> np.ndarray:
    readout.eval()
    parts = [
        task.predict(readout(features[i : i + batch_size].to(device))).cpu()
        for i in range(0, len(features), batch_size)
    ]
    return torch.cat(parts).numpy()


def run(
    params: Params,
    scale: str,
    task_name: str,
    shard_dir: str | Path,
    pretrain_dir: str | Path,
    out_dir: str | Path,
    params_path: str | Path,
) -> dict:
    """Train and score the `task_name` readout on the frozen encoder of `scale`."""
    cfg = params.readout
    device = setup_runtime(params.runtime)
    torch.manual_seed(cfg.seed)
    checkpoint = Path(pretrain_dir) / "checkpoint.pt"
    encoder = load_encoder(checkpoint, params.runtime.attention).to(device)
    num_blocks = readout_block_count(encoder.cfg.depth, cfg.readout_depth)
    task = TASKS[task_name](encoder.cfg.tubelet, encoder.grid)
    keys = ("video", task.key)
    train = load_split(shard_dir, "readout-train", keys)
    test = load_split(shard_dir, "readout-test", keys)

    started = time.perf_counter()
    train_features = extract_features(encoder, train["video"], num_blocks, device, cfg.batch_size)
    test_features = extract_features(encoder, test["video"], num_blocks, device, cfg.batch_size)
    readout = AttentionReadout(
        feature_dim=encoder.cfg.width,
        grid=encoder.grid,
        frames=train["video"].shape[1],
        width=cfg.width,
        heads=cfg.heads,
        num_queries=task.num_queries,
        out_dim=task.out_dim,
        backend=params.runtime.attention,
    ).to(device)
    train_readout(
        readout, task, train_features, task.targets(train), cfg, device, f"{scale}-{task_name}"
    )
    prediction = predict(readout, task, test_features, device, cfg.batch_size)

    metrics = {
        "scale": scale,
        "task": task_name,
        "params": count_parameters(encoder),
        "readout_block": num_blocks,
        "test_clips": len(prediction),
        **task.metrics(prediction, task.targets(test).numpy()),
        "seconds": round(time.perf_counter() - started, 2),
    }
    out_dir = Path(out_dir)
    write_json(out_dir / "metrics.json", metrics)
    inputs = [checkpoint, *sorted(Path(shard_dir).glob("readout-*.npz"))]
    write_run_record(out_dir, f"readout@{scale}-{task_name}", params_path, inputs, str(device))
    return metrics
