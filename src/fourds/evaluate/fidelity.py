"""Reconstruction fidelity of an MAE: masks, reconstructions, and the fixed feature extractor.

The fidelity stage (fourds.stages.fidelity) reconstructs held-out clips with each scale's MAE
and compares them with the originals; this module draws the masks, runs the reconstructions,
resolves which weights the shared FID/KID feature extractor loads (by default the pretrained
encoder of `fidelity.extractor_scale`: one small scale serves the whole ladder) and computes
that encoder's features of frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fourds.config import FidelityConfig
from fourds.evaluate.reconstruction import Reconstruction, reconstruct
from fourds.models.mae import MaskedAutoencoder
from fourds.models.vit import VideoViT
from fourds.models.weights import WeightsError

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


def evenly_spaced(frames: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over `frames`, first and last included (0: all)."""
    return np.linspace(0, frames - 1, count or frames).round().astype(int).tolist()


def extractor_weights(fidelity: FidelityConfig, pretrain_root: str | Path) -> Path:
    """The weights file of the feature extractor `fidelity.feature_extractor` names (the
    pretrained encoder of `fidelity.extractor_scale` is read under `pretrain_root`).

    Raises:
        WeightsError: the file is missing, or an Inception file is not plain tensors (it is
            checked with `weights_only=True` before torch-fidelity, which loads it unchecked).
    """
    if fidelity.feature_extractor == "fourds":
        if not fidelity.encoder_weights:
            return Path(pretrain_root) / fidelity.extractor_scale / "checkpoint.pt"
        path = Path(fidelity.encoder_weights)
        if not path.is_file():
            raise WeightsError(f"fidelity.encoder_weights={fidelity.encoder_weights}: not found")
        return path
    path = Path(fidelity.inception_weights)
    if not path.is_file():
        raise WeightsError(
            f"fidelity.inception_weights={fidelity.inception_weights}: not found; fourds never "
            f"downloads weights: fetch torch-fidelity's InceptionV3 file ({INCEPTION_FILE}, "
            "from the torch-fidelity v0.2.0 GitHub release) and point this param at it, or "
            "use fidelity.feature_extractor=fourds"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError and others for unsafe or bad files
        raise WeightsError(f"{path}: not a loadable InceptionV3 weights file ({error})") from None
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise WeightsError(f"{path}: not torch-fidelity's InceptionV3 state dict (no fc.weight)")
    return path


def frame_features(encoder: VideoViT, images: torch.Tensor) -> torch.Tensor:
    """A frozen encoder's features of frames: uint8 [B, 3, H, W] -> [B, width] fp32.

    Each frame is resized to the encoder's input size if needed and repeated into a static clip
    of its frame count; its tokens are computed in the encoder's dtype, then normalised in fp32
    (a LayerNorm without parameters) and mean-pooled.
    """
    x = images.float() / 255.0
    size = encoder.size
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    clip = x.permute(0, 2, 3, 1)[:, None].expand(-1, encoder.frames, -1, -1, -1)
    tokens = encoder(clip).float()  # [B, N, width]
    return F.layer_norm(tokens, tokens.shape[-1:]).mean(dim=1)


def reconstruct_split(
    mae: MaskedAutoencoder, videos: np.ndarray, seed: int, batch_size: int, device: torch.device
) -> Reconstruction:
    """MAE reconstructions of uint8 clips [N, T, H, W, 3], masks drawn for all N at once (so
    they do not depend on the batch size)."""
    keep_index, mask = mae.sample_masks(len(videos), torch.Generator().manual_seed(seed))
    parts = []
    for start in range(0, len(videos), batch_size):
        rows = slice(start, start + batch_size)
        video = torch.from_numpy(videos[rows]).to(device)
        parts.append(reconstruct(mae, video, keep_index[rows], mask[rows]))
    return Reconstruction.concatenate(parts)
