"""The `fidelity` stage: how faithfully one scale's MAE reconstructs held-out frames.

The readout-test clips (the first `fidelity.clips`) go through the MAE with masks drawn from
`fidelity.seed`, at the mask ratio and type the checkpoint was trained with. A reconstruction
keeps the visible patches and takes the masked ones from the decoder
(fourds.evaluate.reconstruction). Against the original clips:

    psnr          every frame of the reconstruction; visible pixels are exact, so this rises
                  with the visible fraction
    psnr_masked   the masked pixels only, as predicted: the MAE's actual task
    fid, kid_*    FID and KID (torch-fidelity) between the original and the reconstructed
                  frames, `fidelity.frames_per_clip` of each clip, in the features of one
                  extractor shared by every scale (fourds.evaluate.feature_distances)

PSNR is on 8-bit pixels, pooled over the set. Outputs in `out_dir`: metrics.json,
examples/reconstructions.png (masked input, reconstruction, target) and run.yaml.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from fourds.config import ConfigError, Params
from fourds.data.curate import load_split
from fourds.evaluate.feature_distances import frame_distances
from fourds.evaluate.pictures import reconstruction_figure
from fourds.evaluate.reconstruction import Reconstruction, psnr, reconstruct
from fourds.models.mae import MaskedAutoencoder
from fourds.models.vit import count_parameters
from fourds.models.weights import WeightsError, load_mae
from fourds.records import write_json, write_run_record
from fourds.runtime import setup_runtime

SPLIT = "readout-test"
EXAMPLE_CLIPS, EXAMPLE_FRAMES = 3, 8
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


def evenly_spaced(frames: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over `frames`, first and last included (0: all)."""
    return np.linspace(0, frames - 1, count or frames).round().astype(int).tolist()


def extractor_weights(params: Params, pretrain_root: str | Path) -> Path:
    """The weights file of the feature extractor `fidelity.feature_extractor` names.

    Raises:
        WeightsError: the file is missing, or an Inception file is not plain tensors (it is
            checked with `weights_only=True` before torch-fidelity, which loads it unchecked).
    """
    cfg = params.fidelity
    if cfg.feature_extractor == "fourds":
        if not cfg.encoder_weights:
            return Path(pretrain_root) / params.ladder.scales[-1] / "checkpoint.pt"
        path = Path(cfg.encoder_weights)
        if not path.is_file():
            raise WeightsError(f"fidelity.encoder_weights={cfg.encoder_weights}: not found")
        return path
    path = Path(cfg.inception_weights)
    if not path.is_file():
        raise WeightsError(
            f"fidelity.inception_weights={cfg.inception_weights}: not found; fourds never "
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


def run(
    params: Params,
    scale: str,
    shard_dir: str | Path,
    pretrain_root: str | Path,
    out_dir: str | Path,
    params_path: str | Path,
) -> dict:
    """Reconstruct the held-out clips with the MAE of `scale`; write PSNR, FID and KID."""
    cfg = params.fidelity
    device = setup_runtime(params.runtime)
    checkpoint = Path(pretrain_root) / scale / "checkpoint.pt"
    mae = load_mae(checkpoint, params.runtime.attention).to(device)
    weights = extractor_weights(params, pretrain_root)
    out_dir = Path(out_dir)

    started = time.perf_counter()
    videos = load_split(shard_dir, SPLIT, ("video",))["video"]
    if cfg.clips > len(videos):
        raise ConfigError(f"fidelity.clips={cfg.clips} exceeds the {len(videos)} {SPLIT} clips")
    videos = videos[: cfg.clips or None]
    result = reconstruct_split(mae, videos, cfg.seed, cfg.batch_size, device)

    frames = evenly_spaced(videos.shape[1], cfg.frames_per_clip)
    real, fake = (video[:, frames].flatten(0, 1) for video in (result.target, result.composite))
    if cfg.kid_subset_size > len(real):
        raise ConfigError(
            f"fidelity.kid_subset_size={cfg.kid_subset_size} exceeds the {len(real)} frames "
            f"compared ({len(videos)} clips x {len(frames)} frames): lower it"
        )
    distances = frame_distances(
        real, fake, cfg.feature_extractor, weights, cfg.kid_subset_size, cfg.kid_subsets,
        cfg.seed, cfg.batch_size, device,
    )  # fmt: skip
    masked_psnr = None  # mae.mask_ratio 0 masks nothing
    if result.masked.any():
        masked_psnr = psnr(result.prediction, result.target, result.masked)
    reconstruction_figure(
        result[:EXAMPLE_CLIPS],
        evenly_spaced(videos.shape[1], min(EXAMPLE_FRAMES, videos.shape[1])),
        out_dir / "examples" / "reconstructions.png",
    )
    metrics = {
        "scale": scale,
        "params": count_parameters(mae.encoder),
        "mask_ratio": mae.mask_ratio,
        "feature_extractor": cfg.feature_extractor,
        "extractor_weights": str(weights),
        "clips": len(videos),
        "frames": len(real),
        **distances,
        "psnr": psnr(result.composite, result.target),
        "psnr_masked": masked_psnr,
        "seconds": round(time.perf_counter() - started, 2),
    }
    write_json(out_dir / "metrics.json", metrics)
    inputs = [checkpoint, weights, *sorted(Path(shard_dir).glob(f"{SPLIT}-*.npz"))]
    config = {"fidelity": cfg, "runtime": params.runtime}
    write_run_record(
        out_dir, f"fidelity@{scale}", params_path, list(dict.fromkeys(inputs)), str(device),
        config=config,
    )  # fmt: skip
    return metrics
