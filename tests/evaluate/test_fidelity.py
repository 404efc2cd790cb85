"""Reconstruction fidelity: PSNR, MAE reconstructions, torch-fidelity with the fourds encoder,
and the `fidelity` stage end to end on tiny models."""

from __future__ import annotations

import importlib
import json
import math
import subprocess
import sys
import types
from pathlib import Path
from unittest import mock

import pytest
import torch
import yaml

from fourds.cli import main
from fourds.config import ConfigError, CurateConfig, ModelConfig, Params
from fourds.config.schema import parse
from fourds.data.curate import curate
from fourds.evaluate import feature_distances
from fourds.evaluate.feature_distances import (
    EXTRACTORS,
    FourdsEncoderFeatures,
    frame_distances,
    import_torch_fidelity,
    torch_fidelity,
)
from fourds.evaluate.fidelity import evenly_spaced, extractor_weights
from fourds.evaluate.precision import frozen
from fourds.evaluate.reconstruction import Reconstruction, psnr, reconstruct
from fourds.models.mae import MaskedAutoencoder, patchify
from fourds.models.vit import VideoViT
from fourds.models.weights import WeightsError, load_mae, save_mae
from tests.conftest import REPO_ROOT, tiny_mae_config
from tests.train.conftest import write_tiny_params

TINY = ModelConfig(32, 2, 2, 64, (2, 8, 8), qk_norm=False, parallel_blocks=False, bias=True)
LARGER = ModelConfig(48, 2, 2, 96, (2, 8, 8), qk_norm=False, parallel_blocks=False, bias=True)
CPU = torch.device("cpu")


def save_tiny_mae(path: Path, cfg: ModelConfig = TINY, **mae_changes) -> MaskedAutoencoder:
    """An untrained MAE for 4-frame 16x16 clips, written as a pretrain stage checkpoint."""
    mae_cfg = tiny_mae_config(mask_ratio=0.5, **mae_changes)
    model = MaskedAutoencoder(VideoViT(cfg, 4, 16), mae_cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_mae(path, model.state_dict(), cfg, mae_cfg, 4, 16)
    return model


@pytest.fixture(scope="module")
def setup(tiny_corpus, tmp_path_factory):
    """(shards, pretrain root) with two tiny scales: "tiny" and the larger "tiny_l"."""
    root = tmp_path_factory.mktemp("fidelity")
    curate(tiny_corpus, root, CurateConfig(4, 2, 12, 16, 8, 0.0, "center"))
    torch.manual_seed(0)
    save_tiny_mae(root / "pretrain" / "tiny" / "checkpoint.pt")
    save_tiny_mae(root / "pretrain" / "tiny_l" / "checkpoint.pt", LARGER)
    return root / "shards", root / "pretrain"


def frames(seed: int, count: int = 24, size: int = 16) -> torch.Tensor:
    """uint8 [count, size, size, 3] random frames."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, size, size, 3), generator=generator, dtype=torch.uint8)


# PSNR ------------------------------------------------------------------------------------


def test_psnr_matches_hand_worked_values():
    target = torch.zeros(2, 2, 2, 3, dtype=torch.uint8)
    assert psnr(target + 1, target) == pytest.approx(20 * math.log10(255))  # MSE 1: 48.13 dB
    half = target.clone()
    half[0] = 10  # half the values off by 10: MSE 50
    assert psnr(half, target) == pytest.approx(10 * math.log10(255**2 / 50))  # 31.14 dB
    where = torch.zeros(2, 2, 2, dtype=torch.bool)
    where[0, 0] = True  # two off pixels: MSE 100
    assert psnr(half, target, where) == pytest.approx(10 * math.log10(255**2 / 100))  # 28.13
    assert psnr(target, target) == math.inf
    with pytest.raises(ValueError, match="no pixel"):
        psnr(half, target, torch.zeros_like(where))


def test_the_mean_colour_baseline_fills_masked_pixels_with_the_visible_mean():
    target = torch.zeros(1, 1, 2, 2, 3, dtype=torch.uint8)
    target[0, 0, 0, 0] = torch.tensor([30, 60, 90])
    target[0, 0, 0, 1] = torch.tensor([10, 20, 31])
    masked = torch.tensor([[[[False, False], [True, True]]]])
    result = Reconstruction(target, torch.zeros_like(target), masked).mean_colour_baseline()
    assert result.prediction[0, 0, 1, 1].tolist() == [20, 40, 60]  # 60.5 rounds to even
    assert torch.equal(result.composite[~masked], target[~masked])
    # masked pixels are 0, predicted (20, 40, 60): MSE = (400 + 1600 + 3600) / 3
    expected = 10 * math.log10(255**2 / ((400 + 1600 + 3600) / 3))
    assert psnr(result.prediction, result.target, masked) == pytest.approx(expected)


def test_evenly_spaced_frames_include_the_ends():
    assert evenly_spaced(8, 3) == [0, 4, 7]
    assert evenly_spaced(4, 0) == [0, 1, 2, 3]


# Reconstructions -------------------------------------------------------------------------


def tiny_reconstruction() -> tuple[MaskedAutoencoder, torch.Tensor, torch.Tensor, torch.Tensor]:
    """An untrained tiny MAE (eval mode), two uint8 clips and their masks."""
    torch.manual_seed(0)
    mae = MaskedAutoencoder(VideoViT(TINY, 4, 16), tiny_mae_config(mask_ratio=0.5)).eval()
    video = frames(1, count=8).reshape(2, 4, 16, 16, 3)
    keep_index, mask = mae.sample_masks(2, torch.Generator().manual_seed(0))
    return mae, video, keep_index, mask


def test_reconstruction_keeps_visible_pixels_and_predicts_masked_ones():
    mae, video, keep_index, mask = tiny_reconstruction()
    result = reconstruct(mae, video, keep_index, mask)
    assert result.prediction.shape == video.shape and result.prediction.dtype == torch.uint8
    assert result.masked.float().mean() == pytest.approx(mask.float().mean().item())
    # Token 1 is the tubelet of frames 0-1, rows 0-7, columns 8-15.
    assert bool(result.masked[0, 0, 0, 8]) == bool(mask[0, 1])
    visible, masked = ~result.masked, result.masked
    assert torch.equal(result.composite[visible], video[visible])
    assert torch.equal(result.composite[masked], result.prediction[masked])
    assert (result.masked_input[masked] == 128).all()


@pytest.mark.parametrize(
    "changes",
    [{}, {"norm_pix_loss": True}, {"decoder": "queries", "query_stride": (1, 2, 2)}],
    ids=["pixels", "norm_pix_loss", "queries"],
)
def test_a_perfect_prediction_reconstructs_the_clip(changes):
    """The decoder's output is mapped back to pixels in the right layout (and scale)."""
    mae = MaskedAutoencoder(VideoViT(TINY, 4, 16), tiny_mae_config(mask_ratio=0.5, **changes))
    video = frames(2, count=8).reshape(2, 4, 16, 16, 3)

    def perfect(clips, keep_index, mask):
        target = patchify(clips, mae.target_patch)
        if mae.norm_pix_loss:
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        return torch.tensor(0.0), target

    mae.forward = perfect
    keep_index, mask = mae.sample_masks(2, torch.Generator().manual_seed(0))
    result = reconstruct(mae, video, keep_index, mask)
    assert (result.prediction.int() - video.int()).abs().max() <= 1


def test_load_mae_rebuilds_the_saved_model_and_refuses_encoder_only_files(tmp_path):
    saved = save_tiny_mae(tmp_path / "mae.pt", norm_pix_loss=True)
    loaded = load_mae(tmp_path / "mae.pt")
    assert loaded.norm_pix_loss and not loaded.training
    for key, value in saved.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    encoder_only = {k: v for k, v in saved.state_dict().items() if k.startswith("encoder.")}
    save_mae(tmp_path / "encoder.pt", encoder_only, TINY, None, 4, 16)
    with pytest.raises(WeightsError, match="encoder-only weights"):
        load_mae(tmp_path / "encoder.pt")


# torch-fidelity --------------------------------------------------------------------------


def test_torch_fidelity_imports_in_a_fresh_interpreter():
    """Also where torchvision's compiled operators do not load (this project's CPU machine)."""
    code = (
        "from fourds.evaluate.feature_distances import import_torch_fidelity\n"
        "fidelity = import_torch_fidelity()\n"
        "assert callable(fidelity.calculate_metrics)\n"
        "assert 'fourds-encoder' in fidelity.registry.FEATURE_EXTRACTORS_REGISTRY\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_import_shim_leaves_a_working_import_alone(monkeypatch):
    working = types.ModuleType("torch_fidelity")
    monkeypatch.setitem(sys.modules, "torch_fidelity", working)
    declared = feature_distances._TORCHVISION_OPS
    assert import_torch_fidelity() is working
    assert feature_distances._TORCHVISION_OPS is declared


def test_the_import_shim_does_not_hide_other_import_errors(monkeypatch):
    def broken(name):
        raise RuntimeError("something else")

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(RuntimeError, match="something else"):
        import_torch_fidelity()


def test_the_fourds_encoder_is_a_registered_torch_fidelity_extractor(setup):
    _, pretrain = setup
    registry = torch_fidelity.registry.FEATURE_EXTRACTORS_REGISTRY
    assert registry[EXTRACTORS["fourds"]] is FourdsEncoderFeatures
    extractor = torch_fidelity.utils.create_feature_extractor(
        EXTRACTORS["fourds"],
        ["mean_tokens"],
        cuda=False,
        feature_extractor_weights_path=str(pretrain / "tiny" / "checkpoint.pt"),
    )
    (features,) = extractor(frames(3, count=5).permute(0, 3, 1, 2))
    assert features.shape == (5, TINY.width) and features.dtype == torch.float32
    (resized,) = extractor(frames(3, count=5, size=24).permute(0, 3, 1, 2))
    assert resized.shape == (5, TINY.width)  # other frame sizes are resized to 16x16


def test_fid_vanishes_for_the_same_frames_and_kid_stays_far_below_other_frames(setup):
    """KID is unbiased for independent sets; for one set against itself it is not exactly 0
    (slightly negative here), but far below a changed set's."""
    _, pretrain = setup
    weights = pretrain / "tiny" / "checkpoint.pt"
    real = frames(4, count=48)
    darker = (real.float() * 0.5).to(torch.uint8)

    def distances(a, b):
        return frame_distances(a, b, "fourds", weights, 16, 20, 0, 16, CPU)

    same, different = distances(real, real), distances(real, darker)
    assert abs(same["fid"]) < 1e-6 and different["fid"] > 1.0
    assert same["kid_mean"] < 0.2 * different["kid_mean"] and different["kid_mean"] > 0


# The stage ---------------------------------------------------------------------------------


def stage_params(tmp_path: Path, **fidelity) -> Path:
    """params.yaml for the two tiny scales, the larger one's encoder the extractor; keywords
    override `fidelity`."""
    params = write_tiny_params(tmp_path / "params.yaml")
    raw = yaml.safe_load(params.read_text())
    raw["models"]["tiny_l"] = {**raw["models"]["tiny"], "width": 48, "mlp_dim": 96}
    raw["ladder"]["scales"] = ["tiny", "tiny_l"]
    settings = {"kid_subset_size": 4, "kid_subsets": 10, "extractor_scale": "tiny_l"}
    raw["fidelity"].update({**settings, **fidelity})
    params.write_text(yaml.safe_dump(raw))
    return params


def run_stage(setup, params: Path, out: Path) -> int:
    shards, pretrain = setup
    return main(["fidelity", "--params", str(params), "--scale", "tiny", "--curated",
                 str(shards), "--pretrain-root", str(pretrain), "--out", str(out)])  # fmt: skip


def test_the_stage_writes_metrics_and_reconstructions(setup, tmp_path):
    out = tmp_path / "out"
    assert run_stage(setup, stage_params(tmp_path), out) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["scale"] == "tiny" and metrics["feature_extractor"] == "fourds"
    assert metrics["extractor_weights"] == str(setup[1] / "tiny_l" / "checkpoint.pt")
    assert (metrics["clips"], metrics["frames"], metrics["mask_ratio"]) == (1, 4, 0.5)
    for key in ("fid", "kid_mean", "kid_std", "psnr", "psnr_masked", "baseline_psnr_masked"):
        assert math.isfinite(metrics[key]), key
    assert metrics["psnr"] > metrics["psnr_masked"]  # visible pixels are copied exactly
    picture = out / "examples" / "reconstructions.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = yaml.safe_load((out / "run.yaml").read_text())
    assert record["stage"] == "fidelity@tiny"
    assert str(setup[1] / "tiny_l" / "checkpoint.pt") in record["inputs"]


def test_the_stage_in_bf16_extracts_with_the_named_scale(setup, tmp_path):
    out = tmp_path / "out"
    params = stage_params(tmp_path, extractor_scale="tiny", precision="bf16")
    assert run_stage(setup, params, out) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["extractor_weights"] == str(setup[1] / "tiny" / "checkpoint.pt")
    for key in ("fid", "kid_mean", "psnr", "psnr_masked"):
        assert math.isfinite(metrics[key]), key


def test_a_bf16_extractor_holds_bf16_weights_and_gives_fp32_features_near_fp32_ones(setup):
    _, pretrain = setup
    images = frames(3, count=5).permute(0, 3, 1, 2)
    features = {}
    for precision in ("fp32", "bf16"):
        extractor = torch_fidelity.utils.create_feature_extractor(
            EXTRACTORS["fourds"],
            ["mean_tokens"],
            cuda=False,
            feature_extractor_weights_path=str(pretrain / "tiny" / "checkpoint.pt"),
            feature_extractor_internal_dtype=precision,
        )
        weights = {p.dtype for p in extractor.parameters()}
        assert weights == {torch.float32 if precision == "fp32" else torch.bfloat16}
        (features[precision],) = extractor(images)
    assert features["bf16"].dtype == torch.float32
    # normalised tokens (unit variance per token), mean-pooled: bf16 rounding stays small
    assert (features["bf16"] - features["fp32"]).abs().max() < 0.05


def test_reconstructions_of_a_bf16_mae_are_close_to_fp32_ones():
    mae, video, keep_index, mask = tiny_reconstruction()
    full = reconstruct(mae, video, keep_index, mask)
    half = reconstruct(frozen(mae, "bf16", CPU), video, keep_index, mask)
    assert torch.equal(half.masked, full.masked) and half.prediction.dtype == torch.uint8
    difference = (half.prediction.float() - full.prediction.float()).abs()
    assert difference.mean() < 2.0  # 8-bit levels


def random_inception_weights(path: Path) -> Path:
    """torch-fidelity's InceptionV3 with random weights, saved as its weights file."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    with mock.patch.object(FeatureExtractorInceptionV3, "load_state_dict"):
        with mock.patch("torch.load", return_value={}):
            network = FeatureExtractorInceptionV3(EXTRACTORS["inception"], ["2048"], "unused")
    torch.save(network.state_dict(), path)
    return path


def test_inception_weights_from_a_file_build_torch_fidelitys_extractor(tmp_path):
    """The file the stage checks is the file torch-fidelity's InceptionV3 loads (a whole
    Inception FID is left out here: its 2048-d covariance takes ~10 s on 2 CPU cores)."""
    weights = random_inception_weights(tmp_path / "inception.pth")
    path = stage_params(tmp_path, feature_extractor="inception", inception_weights=str(weights))
    params = parse(Params, yaml.safe_load(path.read_text()))
    assert extractor_weights(params.fidelity, tmp_path / "pretrain") == weights
    extractor = torch_fidelity.utils.create_feature_extractor(
        EXTRACTORS["inception"], ["2048"], cuda=False, feature_extractor_weights_path=str(weights)
    )
    (features,) = extractor(frames(5, count=2).permute(0, 3, 1, 2))
    assert features.shape == (2, 2048)


class Unsafe:
    """Pickled by reference: loading it with weights_only=True is refused."""


@pytest.mark.parametrize("kind", ["missing", "unsafe"])
def test_bad_inception_weights_stop_the_stage_with_one_line(setup, tmp_path, capsys, kind):
    weights = tmp_path / "inception.pth"
    if kind == "unsafe":
        torch.save({"fc.weight": Unsafe()}, weights)
    params = stage_params(tmp_path, feature_extractor="inception", inception_weights=str(weights))
    assert run_stage(setup, params, tmp_path / "out") == 2
    error = capsys.readouterr().err
    expected = "not found; fourds never downloads" if kind == "missing" else "not a loadable"
    assert error.startswith("fourds fidelity: error: ") and expected in error, error
    assert str(weights) in error


def test_too_large_a_kid_subset_is_a_param_error(setup, tmp_path, capsys):
    assert run_stage(setup, stage_params(tmp_path, kid_subset_size=5), tmp_path / "out") == 2
    assert "fidelity.kid_subset_size=5 exceeds the 4 frames compared" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"feature_extractor": "inception"},
            "fidelity.inception_weights is empty: fidelity.feature_extractor='inception' needs",
        ),
        (
            {"inception_weights": "x.pth"},
            "fidelity.inception_weights='x.pth' is read only by "
            "fidelity.feature_extractor='inception'",
        ),
        ({"feature_extractor": "clip"}, "fidelity.feature_extractor='clip' is not one of"),
        (
            {"clips": 2, "frames_per_clip": 4, "kid_subset_size": 9},
            "fidelity.kid_subset_size=9 exceeds the 8 frames compared",
        ),
        ({"frames_per_clip": 9}, "fidelity.frames_per_clip=9 exceeds curate.clip_frames=8"),
        ({"extractor_scale": "4ds_s"}, "fidelity.extractor_scale='4ds_s' is not one of ladder"),
        ({"precision": "fp16"}, "fidelity.precision='fp16' is not one of"),
    ],
)
def test_fidelity_params_are_validated(changes, message):
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw["fidelity"].update(changes)
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse(Params, raw)
