"""The `fidelity` stage: how faithfully one scale's MAE reconstructs held-out frames.

The readout-test clips (the first `fidelity.clips`) go through the MAE with masks drawn from
`fidelity.seed`, at the mask ratio and type the checkpoint was trained with. A reconstruction
keeps the visible patches and takes the masked ones from the decoder
(fourds.evaluate.reconstruction). Against the original clips:

    psnr          every frame of the reconstruction; visible pixels are exact, so this rises
                  with the visible fraction
    psnr_masked   the masked pixels only, as predicted: the MAE's actual task
    baseline_psnr, baseline_psnr_masked
                  the same with no learning: masked pixels set to their clip's mean visible
                  colour, the floor a scale's reconstructions should clear
    fid, kid_*    FID and KID (torch-fidelity) between the original and the reconstructed
                  frames, `fidelity.frames_per_clip` of each clip, in the features of one
                  extractor shared by every scale (fourds.evaluate.feature_distances)

PSNR is on 8-bit pixels, pooled over the set. The MAE and the fourds extractor hold their
weights in `fidelity.precision` (bf16 fits 4DS-j's MAE on one 80 GB GPU); the MAE leaves the
device before the extractor is built, so the two never share it. Outputs in `out_dir`:
metrics.json, examples/reconstructions.png (masked input, reconstruction, target), run.yaml and
execution.yaml (fourds.records).
"""

from __future__ import annotations

import time
from pathlib import Path

from fourds import layout
from fourds.atomic import check_output_directory, claim_output_directory, write_json
from fourds.config import ConfigError, Params
from fourds.config.operative import configured, stage
from fourds.data.shards import load_split, shard_paths
from fourds.evaluate.feature_distances import frame_distances
from fourds.evaluate.fidelity import evenly_spaced, extractor_weights, reconstruct_split
from fourds.evaluate.pictures import reconstruction_figure
from fourds.evaluate.precision import frozen
from fourds.evaluate.reconstruction import psnr
from fourds.models.vit import count_parameters
from fourds.models.weights import is_verified, load_mae
from fourds.records import write_run_record
from fourds.runtime import setup_runtime

SPLIT = "readout-test"
EXAMPLE_CLIPS, EXAMPLE_FRAMES = 3, 8


@stage
def run(
    params: Params,
    scale: str,
    shard_dir: str | Path,
    pretrain_root: str | Path,
    out_dir: str | Path,
    params_path: str | Path,
) -> dict:
    """Reconstruct the held-out clips with the MAE of `scale`; write PSNR, FID and KID."""
    params.model(scale)  # an unknown scale fails here, before any data is loaded
    check_output_directory(out_dir, (shard_dir, pretrain_root))
    cfg = params.fidelity
    runtime, device = setup_runtime(params.runtime)
    checkpoint = Path(pretrain_root) / scale / "checkpoint.pt"
    mae = load_mae(checkpoint, runtime.attention)
    mae = configured(frozen, {"precision": cfg.precision}, mae, device=device)
    weights = extractor_weights(cfg, pretrain_root)
    out_dir = Path(out_dir)

    started = time.perf_counter()
    videos = load_split(shard_dir, SPLIT, ("video",))["video"]
    if cfg.clips > len(videos):
        raise ConfigError(f"fidelity.clips={cfg.clips} exceeds the {len(videos)} {SPLIT} clips")
    videos = videos[: cfg.clips or None]
    result = reconstruct_split(mae, videos, cfg.seed, cfg.batch_size, device)
    model = {"params": count_parameters(mae.encoder), "mask_ratio": mae.mask_ratio}
    del mae  # the extractor has the device to itself

    frames = evenly_spaced(videos.shape[1], cfg.frames_per_clip)
    real, fake = (video[:, frames].flatten(0, 1) for video in (result.target, result.composite))
    if cfg.kid_subset_size > len(real):
        raise ConfigError(
            f"fidelity.kid_subset_size={cfg.kid_subset_size} exceeds the {len(real)} frames "
            f"compared ({len(videos)} clips x {len(frames)} frames): lower it"
        )
    distances = frame_distances(
        real, fake, cfg.feature_extractor, weights, cfg.kid_subset_size, cfg.kid_subsets,
        cfg.seed, cfg.batch_size, device, cfg.precision,
    )  # fmt: skip
    baseline = result.mean_colour_baseline()
    masked_psnr = baseline_masked_psnr = None  # mae.mask_ratio 0 masks nothing
    if result.masked.any():
        masked_psnr = psnr(result.prediction, result.target, result.masked)
        baseline_masked_psnr = psnr(baseline.prediction, baseline.target, baseline.masked)
    claim_output_directory(out_dir, (shard_dir, pretrain_root))
    reconstruction_figure(
        result[:EXAMPLE_CLIPS],
        evenly_spaced(videos.shape[1], min(EXAMPLE_FRAMES, videos.shape[1])),
        out_dir / "examples" / "reconstructions.png",
    )
    metrics = {
        "scale": scale,
        **model,
        "feature_extractor": cfg.feature_extractor,
        "extractor_weights": str(weights),
        "clips": len(videos),
        "frames": len(real),
        **distances,
        "psnr": psnr(result.composite, result.target),
        "psnr_masked": masked_psnr,
        "baseline_psnr": psnr(baseline.composite, baseline.target),
        "baseline_psnr_masked": baseline_masked_psnr,
    }
    write_json(out_dir / "metrics.json", metrics)
    inputs = [checkpoint, weights, *shard_paths(shard_dir, SPLIT)]
    fourds_weights = (checkpoint, weights) if cfg.feature_extractor == "fourds" else (checkpoint,)
    write_run_record(
        out_dir, layout.fidelity(scale).name, params_path, list(dict.fromkeys(inputs)), str(device),
        execution={"seconds": round(time.perf_counter() - started, 2)},
        unverified=[path for path in dict.fromkeys(fourds_weights) if not is_verified(path)],
        attention=runtime.attention,
    )  # fmt: skip
    return metrics
