"""FID and KID between two sets of frames with torch-fidelity, in the features of a fixed network.

Two feature extractors (`EXTRACTORS`):

- `fourds`: a frozen fourds encoder, registered with torch-fidelity as "fourds-encoder". A
  frame is repeated to the encoder's frame count (a static clip: the encoder's positional
  embedding fixes its input shape, and frames give many more samples than clips for the
  covariances FID needs), resized to its input size if needed and encoded by every block; its
  tokens are normalised (a LayerNorm without parameters, as the readouts normalise frozen
  features: the encoder has no final norm, and raw token scales would dominate KID's cubic
  kernel) and mean-pooled (`fourds.evaluate.fidelity.frame_features`): one vector of the
  encoder's width per frame. Its weights are in `fidelity.precision`, passed as torch-fidelity's
  `feature_extractor_internal_dtype`.
- `inception`: torch-fidelity's InceptionV3 ("inception-v3-compat", 2048-d pool features), the
  standard FID network, from a local weights file.

torch-fidelity builds an extractor by name from `calculate_metrics`' keywords; both read
their weights file from `feature_extractor_weights_path`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import torch
from torch.utils.data import Dataset

from fourds.evaluate.fidelity import frame_features
from fourds.evaluate.precision import frozen
from fourds.models.weights import load_encoder

_TORCHVISION_OPS: torch.library.Library | None = None


def import_torch_fidelity() -> ModuleType:
    """Import torch-fidelity, also where torchvision's compiled operators do not load.

    torch-fidelity imports torchvision. Where torchvision's build does not match torch's (its
    PyPI wheel is a CUDA build; beside a CPU build of torch its C++ operators do not load), the
    import fails when torchvision registers fake kernels for `torchvision::nms` and
    `torchvision::qnms`, operators that its library would have declared. torch-fidelity calls
    no torchvision operator, so in that case only: forget the half-imported modules, declare
    the two operators' schemas (no kernels; kept alive in `_TORCHVISION_OPS`, since a
    `torch.library.Library` drops its definitions when it is collected) and import again.
    Where torchvision loads, this is a plain import.
    """
    global _TORCHVISION_OPS
    try:
        return importlib.import_module("torch_fidelity")
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
    for name in [n for n in sys.modules if n.split(".")[0] in ("torchvision", "torch_fidelity")]:
        del sys.modules[name]
    _TORCHVISION_OPS = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        _TORCHVISION_OPS.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    return importlib.import_module("torch_fidelity")


torch_fidelity = import_torch_fidelity()

FOURDS_FEATURE = "mean_tokens"
EXTRACTORS = {"fourds": "fourds-encoder", "inception": "inception-v3-compat"}


class FrameDataset(Dataset):
    """Frames as torch-fidelity reads them: uint8 [N, H, W, 3] -> item uint8 [3, H, W]."""

    def __init__(self, frames: torch.Tensor):
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.frames[index].permute(2, 0, 1)


class FourdsEncoderFeatures(torch_fidelity.FeatureExtractorBase):
    """A frozen fourds encoder as a torch-fidelity feature extractor (see the module docstring).

    Args:
        name, features_list: as torch-fidelity passes them (features: only "mean_tokens").
        feature_extractor_weights_path: a fourds weights file (fourds.models.weights).
        feature_extractor_internal_dtype: torch-fidelity's keyword for the dtype an extractor
            computes in; here a fourds precision, "fp32" (None) or "bf16" (the encoder's
            weights; the features are returned in fp32).
        kwargs: the other `calculate_metrics` keywords (unused).
    """

    def __init__(
        self,
        name: str,
        features_list: list[str],
        feature_extractor_weights_path=None,
        feature_extractor_internal_dtype=None,
        **kwargs,
    ):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise ValueError(f"{name} needs feature_extractor_weights_path: a fourds weights file")
        encoder = load_encoder(feature_extractor_weights_path)
        precision = feature_extractor_internal_dtype or "fp32"
        self.encoder = frozen(encoder, precision, torch.device("cpu"))  # torch-fidelity moves it

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return (FOURDS_FEATURE,)

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return FOURDS_FEATURE

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        """images uint8 [B, 3, H, W] -> (features [B, width] float32,)."""
        return (frame_features(self.encoder, images),)


torch_fidelity.register_feature_extractor(EXTRACTORS["fourds"], FourdsEncoderFeatures)


def frame_distances(
    real: torch.Tensor,
    fake: torch.Tensor,
    extractor: str,
    weights: str | Path,
    kid_subset_size: int,
    kid_subsets: int,
    seed: int,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
) -> dict[str, float]:
    """FID and KID (mean and standard deviation over subsets) between two frame sets.

    Args:
        real, fake: uint8 [N, H, W, 3] frames (the counts may differ; both >= kid_subset_size).
        extractor: a key of `EXTRACTORS`; weights: its weights file.
        seed: KID's choice of subsets.
        device: where the extractor runs (torch-fidelity knows CPU and the current CUDA device).
        precision: the fourds extractor's weights, "fp32" or "bf16" (InceptionV3 runs in fp32).
    """
    dtype = {"feature_extractor_internal_dtype": precision} if extractor == "fourds" else {}
    metrics = torch_fidelity.calculate_metrics(
        input1=FrameDataset(fake),
        input2=FrameDataset(real),
        fid=True,
        kid=True,
        feature_extractor=EXTRACTORS[extractor],
        feature_extractor_weights_path=str(weights),
        **dtype,
        kid_subset_size=kid_subset_size,
        kid_subsets=kid_subsets,
        rng_seed=seed,
        batch_size=batch_size,
        cuda=device.type == "cuda",
        cache=False,
        save_cpu_ram=True,  # no DataLoader worker processes for frames already in memory
        verbose=False,
    )
    return {
        "fid": metrics[torch_fidelity.KEY_METRIC_FID],
        "kid_mean": metrics[torch_fidelity.KEY_METRIC_KID_MEAN],
        "kid_std": metrics[torch_fidelity.KEY_METRIC_KID_STD],
    }
