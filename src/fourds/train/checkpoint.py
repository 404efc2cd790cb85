"""Resumable training checkpoints with torch.distributed.checkpoint (DCP).

A checkpoint is a directory `step-NNNNNNNN/` holding

    .metadata, *.distcp   model and optimizer state, written by DCP (sharded under FSDP2: each
                          rank writes its own shards; loading reshards as needed)
    trainer.json          step, LR scheduler state, loss curve so far, run fingerprint, and
                          the sha256 of every other file of the checkpoint ("files") and of
                          its own content ("digest")
    rank-NNNNN.json       per rank: data loader state and RNG states

Everything is written into `.step-NNNNNNNN.partial/` first; rank 0 renames it to its final
name only after every rank has finished writing. The rename is the commit: a crash at any
moment leaves either the previous checkpoints alone or a `.partial` directory, which is never
loaded and is removed by the next save (or at once, when the save fails: a full disk). Only JSON
and tensors are read back, no pickles.

Every file is checked against its recorded digest before a resume or an export reads it
(`verify_checkpoint`): a damaged checkpoint is refused, not trained on. Each rank hashes the
files it wrote and checks its share of them when loading, so no rank reads every shard twice.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from fourds.atomic import file_digest, reporting_full_disk
from fourds.errors import CheckpointError
from fourds.train.distributed import DistEnv

FORMAT = "fourds-train-state-v1"
_COMPLETE = re.compile(r"step-(\d{8})")


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def latest_checkpoint(root: str | Path) -> Path | None:
    """The complete checkpoint with the highest step under `root`, or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    steps = [
        (int(match.group(1)), path)
        for path in root.iterdir()
        if (match := _COMPLETE.fullmatch(path.name)) and (path / "trainer.json").is_file()
    ]
    return max(steps)[1] if steps else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write and fsync, so that the directory rename commits data that is on disk."""
    with open(path, "w") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())


def _barrier(env: DistEnv) -> None:
    if env.sharded:
        dist.barrier()


def rng_state() -> dict[str, str]:
    """This process's torch RNG states (CPU and, when present, CUDA), base64 for JSON."""
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state()
    return {
        name: base64.b64encode(state.numpy().tobytes()).decode() for name, state in states.items()
    }


def set_rng_state(states: dict[str, str]) -> None:
    """Inverse of `rng_state`."""

    def tensor(text: str) -> torch.Tensor:
        return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)

    torch.set_rng_state(tensor(states["cpu"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensor(states["cuda"]))


def save_checkpoint(
    root: str | Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer: dict[str, Any],
    rank_state: dict[str, Any],
    env: DistEnv,
    keep: int,
) -> Path:
    """Save the state after `step` steps; collective (every rank calls it). Returns its path.

    Args:
        root: directory holding this run's checkpoints.
        trainer: JSON-able state shared by all ranks (rank 0 writes it).
        rank_state: JSON-able state of this rank (loader, RNG).
        keep: how many complete checkpoints to keep (older ones are removed after the save).

    Raises:
        DiskFullError: the disk filled; the partial checkpoint is removed, the previous ones
            are kept.
    """
    root = Path(root)
    final = root / checkpoint_name(step)
    partial = root / f".{final.name}.partial"
    try:
        with reporting_full_disk(final, f"the resumable checkpoint of step {step}"):
            if env.is_main:
                shutil.rmtree(partial, ignore_errors=True)
                partial.mkdir(parents=True)
            _barrier(env)
            model_state, optim_state = get_state_dict(model, optimizer)
            state = {"model": model_state, "optim": optim_state}
            dcp.save(state, checkpoint_id=partial, no_dist=not env.sharded)
            _write_json(partial / f"rank-{env.rank:05d}.json", rank_state)
            files = _gathered(_digests(partial, _written_by(partial, env.rank)), env)
            if env.is_main:
                files[".metadata"] = file_digest(partial / ".metadata")
                record = {"format": FORMAT, "step": step, "world_size": env.world_size, **trainer}
                record["files"] = dict(sorted(files.items()))
                _write_json(partial / "trainer.json", {**record, "digest": _json_digest(record)})
    except BaseException:
        if env.is_main:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    if env.is_main:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        _prune(root, keep)
    _barrier(env)
    return final


def _written_by(folder: Path, rank: int) -> list[str]:
    """The files of a checkpoint folder that `rank` wrote: its DCP shards and its state."""
    shards = sorted(path.name for path in folder.glob(f"__{rank}_*.distcp"))
    return [*shards, f"rank-{rank:05d}.json"]


def _digests(folder: Path, names: list[str]) -> dict[str, str]:
    return {name: file_digest(folder / name) for name in names}


def _gathered(digests: dict[str, str], env: DistEnv) -> dict[str, str]:
    """Every rank's `digests` merged (collective under torchrun)."""
    if not env.sharded:
        return dict(digests)
    parts: list[dict[str, str] | None] = [None] * env.world_size
    dist.all_gather_object(parts, digests)
    return {name: digest for part in parts for name, digest in (part or {}).items()}


def _json_digest(record: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def verify_checkpoint(path: str | Path, env: DistEnv | None = None) -> dict[str, Any]:
    """Read a checkpoint's trainer.json and check it and every file it lists against their
    digests (collective under torchrun: each rank checks a share); returns the trainer state.

    A checkpoint written before checkpoints recorded digests (no "files") is not checked.

    Raises:
        CheckpointError: the folder is not a complete checkpoint of this format, or a file is
            damaged or missing.
    """
    path = Path(path)
    restore = f"remove {path} and run the same command again (it resumes from an earlier one)"
    try:
        trainer = json.loads((path / "trainer.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not a complete checkpoint ({error}); {restore}") from None
    if not isinstance(trainer, dict) or trainer.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} checkpoint")
    if "files" not in trainer:
        return trainer
    recorded = trainer.pop("digest", None)
    if recorded != _json_digest(trainer):
        raise CheckpointError(f"{path}/trainer.json: damaged (its digest differs); {restore}")
    rank, world = (env.rank, env.world_size) if env and env.sharded else (0, 1)
    share = sorted(trainer["files"])[rank::world]
    damaged = [
        name
        for name in share
        if not (path / name).is_file() or file_digest(path / name) != trainer["files"][name]
    ]
    if env and env.sharded:
        found: list[list[str] | None] = [None] * world
        dist.all_gather_object(found, damaged)
        damaged = sorted(name for names in found for name in (names or []))
    if damaged:
        raise CheckpointError(
            f"{path}: damaged or missing {', '.join(damaged)} (not as the save recorded them); "
            f"{restore}"
        )
    return trainer


def _prune(root: Path, keep: int) -> None:
    """Remove all but the newest `keep` complete checkpoints, and stale partial ones."""
    complete = sorted(path for path in root.iterdir() if _COMPLETE.fullmatch(path.name))
    stale = [path for path in root.iterdir() if path.name.endswith(".partial")]
    for path in complete[:-keep] + stale:
        shutil.rmtree(path, ignore_errors=True)


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    env: DistEnv,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load model and optimizer state in place; returns (trainer state, this rank's state).

    Raises:
        CheckpointError: the directory is not a complete checkpoint of this format, is damaged
            (`verify_checkpoint`), or was written by a different number of processes (the
            loader state is per rank).
    """
    path = Path(path)
    trainer = verify_checkpoint(path, env)
    try:
        rank_state = json.loads((path / f"rank-{env.rank:05d}.json").read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not a complete checkpoint ({error})") from None
    if trainer["world_size"] != env.world_size:
        raise CheckpointError(
            f"{path} was written by {trainer['world_size']} processes and this run has "
            f"{env.world_size}: resume with {trainer['world_size']} or remove {path.parent}"
        )
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, checkpoint_id=path, no_dist=not env.sharded)
    set_state_dict(
        model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"]
    )
    return trainer, rank_state
