"""experiments/ (the Hydra tree) and params.yaml must never drift apart."""

from pathlib import Path

import pytest
import yaml

from fourds.config import ConfigError, Params
from fourds.config.compose import compose_params as compose_experiments
from fourds.config.schema import parse
from tests.conftest import REPO_ROOT

EXPERIMENTS = REPO_ROOT / "experiments"


def compose_params(overrides: list[str]) -> dict:
    return compose_experiments(overrides, EXPERIMENTS)


def test_params_yaml_is_the_composition_of_experiments():
    committed = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    assert compose_params([]) == committed


def test_dvc_composes_from_experiments():
    config = (REPO_ROOT / ".dvc" / "config").read_text()
    assert "enabled = true" in config and "config_dir = experiments" in config


@pytest.mark.parametrize("ladder", sorted(p.stem for p in (EXPERIMENTS / "ladder").glob("*.yaml")))
def test_every_ladder_composes_into_valid_params(ladder):
    params = parse(Params, compose_params([f"ladder={ladder}"]))
    assert params.ladder.name == ladder
    assert len(params.ladder.scales) >= 2  # a scale comparison needs two


def test_embedded_ladder_spans_ten_times_in_parameters():
    from fourds.models.vit import VideoViT, count_parameters

    params = parse(Params, compose_params([]))
    counts = []
    for scale in params.ladder.scales:
        encoder = VideoViT(
            params.models[scale], params.curate.clip_frames, params.curate.resolution
        )
        counts.append(count_parameters(encoder))
    assert counts == sorted(counts)
    assert counts[-1] >= 10 * counts[0]


def test_every_model_option_builds(tmp_path: Path):
    from fourds.config import ModelConfig

    for path in sorted((EXPERIMENTS / "model").glob("*.yaml")):
        parse(ModelConfig, yaml.safe_load(path.read_text()), f"model/{path.stem}")


def test_score_official_composes_the_4ds_ladder_to_score_a_converted_encoder():
    """The README's recipes for an official checkpoint: the 4ds ladder's 4DS-B and its readouts,
    the frozen regime alone, an fp32 encoder on the CPU unless runtime=cuda is added, depth in
    ScanNet's range; no task's data or readout pinned, so any task composes with its own
    benchmark and the released depth readout is named only where it is scored."""
    params = parse(Params, compose_params(["score=official"]))
    assert params.ladder.name == "4ds" and "4ds_b" in params.ladder.scales
    assert params.readout.regimes == ("frozen",) and params.readout.precision == "fp32"
    assert params.readouts["pose"].options.head == "attention"
    assert params.readouts["depth"].options.range[1] == 10.0
    assert params.runtime.device == "cpu"
    for task in params.readout.tasks:
        settings = params.readouts[task]
        assert (settings.source.format, settings.pretrained) == ("synthetic", ""), task
        assert (settings.width, settings.heads) == (1024, 16), task
    tapvid = ["readouts.tracking.source.format=tapvid", "readouts.tracking.source.train=a.pkl"]
    tapvid.append("readouts.tracking.source.test=b.pkl")
    on_gpu = parse(Params, compose_params(["score=official", *tapvid, "runtime=cuda"]))
    assert on_gpu.runtime.device == "cuda" and on_gpu.ladder.name == "4ds"


def test_a_scale_is_pinned_to_a_layout_as_the_planning_page_says():
    params = parse(Params, compose_params(["ladder=4ds", "++pretrain.data_parallel={4ds_j:hsdp}"]))
    assert params.pretrain.layout("4ds_j") == "hsdp" and params.pretrain.layout("4ds_s") == "fsdp"


def test_an_override_hydra_cannot_apply_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match=r"cannot compose ladder=nonexistent: .*nonexistent"):
        compose_params(["ladder=nonexistent"])


def test_a_mistyped_key_gets_the_nearest_params_not_hydras_hint_to_append_it():
    with pytest.raises(ConfigError) as raised:
        compose_params(["pretrain.steps=8", "pretrain.lrr=1"])
    message = str(raised.value)
    assert "pretrain.lrr is no param" in message and "the nearest: pretrain.lr" in message
    assert "+pretrain.lrr" not in message and "\n" not in message
    with pytest.raises(ConfigError, match=r"nonexistent\.key is no param \(params\.yaml"):
        compose_params(["nonexistent.key=1"])
    with pytest.raises(ConfigError) as raised:  # a key of the chosen ladder's own models is known
        compose_params(["ladder=4ds", "models.4ds_j.width=8", "pretrain.lrr=1"])
    assert "pretrain.lrr is no param" in str(raised.value)
