import copy
from typing import Annotated, Literal

import pytest
import yaml
from pydantic import Field
from pydantic.dataclasses import dataclass

from fourds.config import ConfigError, Params, load_params
from fourds.config.schema import SECTION, PositiveInt, Section, parse
from tests.conftest import REPO_ROOT


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


def check_fails(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse(Params, raw)
    assert str(error.value) == message


def test_committed_params_validate():
    params = load_params(REPO_ROOT / "params.yaml")
    assert len(params.ladder.scales) >= 2  # a scaling study: a smallest and a largest scale
    assert all(scale in params.models for scale in params.ladder.scales)


def test_a_scale_name_with_a_dash_is_refused(raw):
    """A readout stage is named <scale>-<regime> (fourds.layout): a dash in a scale's
    name would make its readouts' names ambiguous."""
    raw["models"]["cpu-s"] = raw["models"].pop("cpu_s")
    raw["ladder"]["scales"] = ["cpu-s", *raw["ladder"]["scales"][1:]]
    check_fails(
        raw,
        "ladder.scales has 'cpu-s': a scale's name holds no '-' (a readout stage is named "
        "<scale>-<regime>, fourds.layout)",
    )


def test_width_not_divisible_by_heads_names_both_keys(raw):
    raw["models"]["cpu_s"].update(width=100, heads=3)
    check_fails(raw, "models.cpu_s.width=100 is not divisible by models.cpu_s.heads=3")


def test_unknown_key_is_refused(raw):
    raw["pretrain"]["learning_rate"] = 0.1
    with pytest.raises(ConfigError, match=r"^pretrain has unknown key\(s\) \['learning_rate'\]"):
        parse(Params, raw)


def test_missing_key_is_refused(raw):
    del raw["mae"]["mask_ratio"]
    with pytest.raises(ConfigError, match=r"^mae is missing key\(s\) \['mask_ratio'\]"):
        parse(Params, raw)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("mae", "mask_ratio", 1.0, "mae.mask_ratio=1.0 must be in [0, 1)"),
        ("pretrain", "steps", 0, "pretrain.steps=0 must be positive"),
        ("pretrain", "lr", 0, "pretrain.lr=0.0 must be positive"),
        ("runtime", "threads", -1, "runtime.threads=-1 must be >= 0 (0: default)"),
        ("curate", "fps", -1, "curate.fps=-1.0 must be >= 0 (0: keep the source rate)"),
        (
            "curate",
            "pinned_data",
            {"data": "32389e2f02d45698d7cfe6da815f576b"},
            "curate.pinned_data.data='32389e2f02d45698d7cfe6da815f576b' must be DVC's md5 of a "
            "folder: 32 hex digits and .dir (the md5 of its .dvc file)",
        ),
        ("fidelity", "kid_subset_size", 1, "fidelity.kid_subset_size=1 must be >= 2"),
        ("runtime", "device", "tpu", "runtime.device='tpu' is not one of ['cpu', 'cuda', 'auto']"),
        ("pretrain", "batch_size", "8", "pretrain.batch_size='8' must be an integer"),
        (
            "runtime",
            "attention",
            "flash",
            "runtime.attention='flash' is not one of ['sdpa', 'sdpa_cudnn', 'sdpa_flash', "
            "'sdpa_efficient', 'xformers', 'math']",
        ),
        ("readout", "readout_depth", 0.0, "readout.readout_depth=0.0 must be in (0, 1]"),
        ("pretrain", "crop_scale", [0.5, 1.5], "pretrain.crop_scale[1]=1.5 must be in (0, 1]"),
        (
            "pretrain",
            "crop_scale",
            [0.9, 0.5],
            "pretrain.crop_scale=[0.9, 0.5] must be [low, high] with low <= high",
        ),
        ("pretrain", "crop_aspect", [0, 1], "pretrain.crop_aspect[0]=0.0 must be positive"),
        ("pretrain", "crop_aspect", [1.0], "pretrain.crop_aspect=[1.0] must have 2 entries"),
        (
            "pretrain",
            "frame_stride",
            5,
            "curate.pretrain_frames=32 is shorter than a pretraining window of 36 frames "
            "(curate.clip_frames=8 at pretrain.frame_stride=5)",
        ),
        (
            "readout",
            "regimes",
            ["frozen", "linear"],
            "readout.regimes[1]='linear' is not one of "
            "['frozen', 'finetuned', 'initial', 'random_init']",
        ),
        ("readout", "regimes", [], "readout.regimes is empty: name at least one regime"),
        (
            "readout",
            "regimes",
            ["frozen", "frozen"],
            "readout.regimes=['frozen', 'frozen'] names a regime twice",
        ),
        ("readout", "pose_pairs", "first", "readout.pose_pairs is now readouts.pose.options.pairs"),
        (
            "readouts",
            "pose",
            {"width": 8},
            "readouts.pose is missing key(s) "
            "['heads', 'steps', 'batch_size', 'lr', 'weight_decay', 'source', 'pretrained', "
            "'pretrain_clips', 'seeds', "
            "'options']",
        ),
    ],
)
def test_invalid_values_name_key_and_rule(raw, section, key, value, message):
    raw[section][key] = value
    check_fails(raw, message)


def test_a_tubelet_entry_is_named_by_its_axis(raw):
    raw["models"]["cpu_s"]["tubelet"] = [2, 0, 8]
    check_fails(raw, "models.cpu_s.tubelet[h]=0 must be positive")
    raw["models"]["cpu_s"]["tubelet"] = [2, 8]
    check_fails(raw, "models.cpu_s.tubelet=[2, 8] must have 3 entries")


def test_field_annotations_carry_the_rules_of_any_section():
    @dataclass(frozen=True, config=SECTION)
    class Toy(Section):
        mode: Literal["fast", "slow"]
        count: PositiveInt
        workers: Annotated[int, Field(ge=0, description="0: none")]

    assert parse(Toy, {"mode": "fast", "count": 1, "workers": 0}, "toy") == Toy("fast", 1, 0)
    for changes, message in [
        ({"mode": "medium"}, "toy.mode='medium' is not one of ['fast', 'slow']"),
        ({"count": 0}, "toy.count=0 must be positive"),
        ({"workers": -2}, "toy.workers=-2 must be >= 0 (0: none)"),
    ]:
        with pytest.raises(ConfigError) as error:
            parse(Toy, {"mode": "fast", "count": 1, "workers": 0, **changes}, "toy")
        assert str(error.value) == message


def test_every_readout_task_needs_its_settings(raw):
    del raw["readouts"]["boxes"]
    check_fails(
        raw,
        "readout.tasks has 'boxes', which has no settings under readouts "
        "(known: ['appearance', 'classification', 'depth', 'pose', 'tracking'])",
    )


@pytest.mark.parametrize(
    ("task", "source", "message"),
    [
        (
            "pose",
            {"format": "realestate10k", "train": "cameras/"},
            "readouts.pose.source.format='realestate10k' needs both readouts.pose.source.train "
            "and readouts.pose.source.test paths",
        ),
        (
            "tracking",
            {"train": "a.pkl"},
            "readouts.tracking.source.format='synthetic' reads the curated shards: leave "
            "readouts.tracking.source.train and readouts.tracking.source.test empty",
        ),
        ("boxes", {"frame_stride": 0}, "readouts.boxes.source.frame_stride=0 must be positive"),
        (
            "classification",
            {"format": "ssv2", "train": "labels/train.json", "test": "labels/validation.json"},
            "readouts.classification.source.format='ssv2' needs "
            "readouts.classification.source.videos, the folder of its videos",
        ),
        (
            "depth",
            {"format": "scannet", "train": "a", "test": "b", "videos": "scans"},
            "readouts.depth.source.videos is read by the ['perception_test', 'ssv2', "
            "'kinetics'] formats only: leave it empty for format='scannet'",
        ),
    ],
)
def test_a_readout_source_must_suit_its_task(raw, task, source, message):
    raw["readouts"][task]["source"].update(source)
    check_fails(raw, message)


def test_a_converted_readout_is_scored_on_a_frozen_encoder_only(raw):
    raw["readouts"]["depth"]["pretrained"] = "w-readout.pt"
    raw["readout"]["regimes"] = ["frozen", "finetuned"]
    check_fails(
        raw,
        "readouts.depth.pretrained scores a trained readout on a frozen encoder: "
        "readout.regimes=['frozen', 'finetuned'] must be ['frozen']",
    )


def test_ladder_scale_must_be_defined(raw):
    raw["ladder"]["scales"] = [*raw["ladder"]["scales"], "giant"]
    with pytest.raises(
        ConfigError, match=r"^ladder.scales has 'giant', which is not defined under models"
    ):
        parse(Params, raw)


def test_resolution_must_tile_into_tubelets(raw):
    raw["curate"]["resolution"] = 60
    with pytest.raises(
        ConfigError, match=r"^curate.resolution=60 is not divisible by models.cpu_s.tubelet"
    ):
        parse(Params, raw)


def test_load_params_reports_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "params.yaml")


def test_valid_mapping_is_not_mutated(raw):
    before = copy.deepcopy(raw)
    parse(Params, raw)
    assert raw == before


@pytest.mark.parametrize(
    ("task", "options", "message"),
    [
        (
            "depth",
            {"alignment": "mean"},
            "readouts.depth.options.alignment='mean' is not one of "
            "['none', 'median', 'least_squares']",
        ),
        (
            "depth",
            {"averaging": "per_pixel"},
            "readouts.depth.options.averaging='per_pixel' is not one of ['per_image', 'pooled']",
        ),
        (
            "depth",
            {"range": [10.0, 1.0]},
            "readouts.depth.options.range=[10.0, 1.0] must be [min, max] with min < max",
        ),
        (
            "depth",
            {"range": [0.0, 1.0]},
            "readouts.depth.options.range[0]=0.0 must be positive",
        ),
        (
            "pose",
            {"pairs": "every"},
            "readouts.pose.options.pairs='every' is not one of ['first', 'all']",
        ),
        (
            "tracking",
            {"head": "correlation"},
            "readouts.tracking.options.head='correlation' is not one of ['attention', 'motion']",
        ),
        (
            "tracking",
            {"static": 1.5},
            "readouts.tracking.options.static=1.5 must be in [0, 1)",
        ),
        (
            "boxes",
            {"head": "motion"},
            "readouts.boxes.options has unknown key(s) ['head'] (known: [])",
        ),
    ],
)
def test_each_task_checks_its_own_options(raw, task, options, message):
    raw["readouts"][task]["options"].update(options)
    check_fails(raw, message)


def test_a_task_option_under_readout_names_its_new_place(raw):
    raw["readout"]["tracking_readout"] = "motion"
    check_fails(raw, "readout.tracking_readout is now readouts.tracking.options.head")


def test_each_task_reads_its_options_as_its_own_section(raw):
    from fourds.config.schema import TaskOptions
    from fourds.config.task_options import DepthOptions, PoseOptions, TrackingOptions

    params = parse(Params, raw)
    sections = {task: type(settings.options) for task, settings in params.readouts.items()}
    assert sections == {
        "depth": DepthOptions,
        "pose": PoseOptions,
        "tracking": TrackingOptions,
        "boxes": TaskOptions,
        "classification": TaskOptions,
        "appearance": TaskOptions,
    }
