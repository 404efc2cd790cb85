"""Shared fixtures: the repository root and small rendered corpora."""

from __future__ import annotations

from pathlib import Path

import pytest

from fourds.config import MAEConfig, ModelConfig
from fourds.data.corpus import WorldSpec, write_corpus

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_WORLD = WorldSpec(
    seed=7,
    frames=12,
    size=32,
    fps=12,
    videos={"pretrain": 2, "readout-train": 1, "readout-test": 1},
)


def tiny_model_config(**changes) -> ModelConfig:
    """A small encoder config (width 32, 2 blocks, tubelet 2x4x4) for model tests; keyword
    arguments override fields."""
    fields = dict(
        width=32,
        depth=2,
        heads=4,
        mlp_dim=64,
        tubelet=(2, 4, 4),
        qk_norm=False,
        parallel_blocks=False,
        bias=True,
    )
    return ModelConfig(**{**fields, **changes})


def tiny_mae_config(**changes) -> MAEConfig:
    """A small decoder config for model tests; keyword arguments override fields."""
    fields = dict(
        mask_ratio=0.75,
        mask_type="random",
        norm_pix_loss=False,
        decoder="mae_st",
        decoder_width=16,
        decoder_depth=1,
        decoder_heads=2,
        query_blocks=1,
        query_stride=(1, 2, 2),
    )
    return MAEConfig(**{**fields, **changes})


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A 4-video corpus of 12 frames at 32x32, rendered once per test session."""
    root = tmp_path_factory.mktemp("corpus")
    write_corpus(root, TINY_WORLD)
    return root
