"""Params loading and validation: `params.yaml` -> typed, checked dataclasses."""

from fourds.config.load import load_params
from fourds.config.schema import (
    ATTENTION_BACKENDS,
    ConfigError,
    CurateConfig,
    FidelityConfig,
    LadderConfig,
    LadderSpec,
    LauncherConfig,
    MAEConfig,
    ModelConfig,
    Params,
    PretrainConfig,
    PretrainSpec,
    ReadoutConfig,
    RuntimeConfig,
    SourceConfig,
    StudyLayout,
    TaskReadoutConfig,
)

__all__ = [
    "ATTENTION_BACKENDS",
    "ConfigError",
    "CurateConfig",
    "FidelityConfig",
    "LadderConfig",
    "LadderSpec",
    "LauncherConfig",
    "MAEConfig",
    "ModelConfig",
    "Params",
    "PretrainConfig",
    "PretrainSpec",
    "ReadoutConfig",
    "SourceConfig",
    "StudyLayout",
    "TaskReadoutConfig",
    "RuntimeConfig",
    "load_params",
]
