"""The 4DS model family: exact counts on the meta device agree with the paper's sizes."""

import pytest
import yaml

from fourds.config import ModelConfig
from fourds.config.schema import parse
from fourds.models.flops import encoder_training_flops
from fourds.models.vit import count_parameters
from fourds.models.zoo import encoder_on_meta, zoo_table
from tests.conftest import REPO_ROOT

MODELS = REPO_ROOT / "experiments" / "model"
# Encoder parameters with the learned positional embedding (REFERENCE.md).
PAPER_PARAMS = {
    "4ds_s": 22.5e6,
    "4ds_b": 87.4e6,
    "4ds_l": 305e6,
    "4ds_h": 634e6,
    "4ds_g": 1.85e9,
    "4ds_e": 3.81e9,
    "4ds_j": 21.8e9,
}


def load(name: str) -> ModelConfig:
    return parse(ModelConfig, yaml.safe_load((MODELS / f"{name}.yaml").read_text()), name)


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_counts_agree_with_the_paper_within_one_percent(name):
    encoder = encoder_on_meta(load(name), 16, 224)
    assert encoder.num_tokens == 8 * 14 * 14
    assert next(encoder.parameters()).device.type == "meta"
    assert count_parameters(encoder) == pytest.approx(PAPER_PARAMS[name], rel=0.01)


def test_training_flops_follow_six_n_per_visible_token():
    cfg = load("4ds_b")
    full = encoder_training_flops(cfg, 16, 224, 0.0)
    masked = encoder_training_flops(cfg, 16, 224, 0.9)
    blocks = count_parameters(encoder_on_meta(cfg, 16, 224).blocks)
    assert full > 6 * blocks * 1568  # attention and the embedding come on top
    assert full / masked > 8  # 10x fewer tokens, and attention shrinks quadratically


def test_zoo_table_is_sorted_by_size():
    rows = zoo_table({name: load(name) for name in PAPER_PARAMS}, 16, 224, 0.9)
    assert [row.name for row in rows] == [
        "4ds_s",
        "4ds_b",
        "4ds_l",
        "4ds_h",
        "4ds_g",
        "4ds_e",
        "4ds_j",
    ]
