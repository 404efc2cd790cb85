import gc

import pytest
import torch

from fourds.config import ModelConfig
from fourds.models.mae import MaskedAutoencoder
from fourds.models.readout import (
    AttentionReadout,
    readout_block_count,
    torch_bicubic_resize_matrix,
)
from fourds.models.vit import VideoViT
from fourds.models.weights import WeightsError, load_encoder, save_mae
from tests.conftest import tiny_mae_config

DECODER = tiny_mae_config(mask_ratio=0.5, decoder_width=8)


@pytest.mark.parametrize(("depth", "blocks"), [(12, 10), (24, 21), (4, 2), (8, 6), (2, 1), (1, 1)])
def test_readout_block_count(depth, blocks):
    """As the released 4DS code: block 10 of 12 for 4DS-B at readout depth 0.95; fourds' own
    readouts read at least one block."""
    assert readout_block_count(depth, 0.95) == blocks


@pytest.mark.parametrize(
    ("depth", "readout_depth", "official", "fourds"),
    [
        (12, 0.95, 10, 10),
        (12, 1.0, 11, 11),
        (12, 0.16, 0, 1),  # entry 1: the token embedding (the input of block 0)
        (12, 0.1, 0, 1),  # entry 0: the token embedding
        (12, 0.05, 11, 1),  # entry -1: the last entry, the input of the last block
        (1, 0.95, 0, 1),
        (2, 0.95, 0, 1),
    ],
)
def test_readout_block_count_by_convention(depth, readout_depth, official, fourds):
    assert readout_block_count(depth, readout_depth, "official") == official
    assert readout_block_count(depth, readout_depth, "fourds") == fourds


@pytest.mark.parametrize("depth", [1, 2, 3, 12, 24, 48])
def test_official_readout_block_count_indexes_the_official_feature_list(depth):
    """The official list holds the blocks run before each entry: the token embedding, then
    each block's input, [0, 0, 1, ..., depth - 1]; it is read at int(len * readout_depth) - 1,
    Python's -1 the last entry. Every readout_depth the schema admits, (0, 1], in steps of
    1/1000."""
    blocks_run = [0, *range(depth)]
    for step in range(1, 1001):
        expected = blocks_run[int(len(blocks_run) * step / 1000) - 1]
        assert readout_block_count(depth, step / 1000, "official") == expected, step


def test_readout_shapes_and_temporal_upsampling():
    readout = AttentionReadout(
        feature_dim=24,
        grid=(2, 3, 3),
        frames=4,
        width=16,
        heads=2,
        num_queries=7,
        query_dim=0,
        out_dim=5,
    )
    features = torch.rand(2, 18, 24)
    assert readout(features).shape == (2, 7, 5)
    # A feature constant in time stays constant after upsampling.
    constant = torch.rand(1, 1, 9, 24).expand(1, 2, 9, 24).reshape(1, 18, 24)
    upsampled = readout.upsample_in_time(constant)
    assert upsampled.shape == (1, 4, 9, 24)
    torch.testing.assert_close(upsampled, constant.reshape(1, 2, 9, 24)[:, :1].expand(1, 4, 9, 24))


def test_the_bicubic_matrix_is_torch_bicubic_upsampling():
    for size_in, size_out in [(2, 4), (4, 8), (3, 7), (8, 16)]:
        signal = torch.rand(5, size_in, dtype=torch.float64)
        by_interpolate = torch.nn.functional.interpolate(
            signal.T.reshape(1, size_in, 5, 1).permute(0, 2, 1, 3),
            size=(size_out, 1), mode="bicubic", align_corners=False,
        )[0, :, :, 0]  # fmt: skip
        matrix = torch_bicubic_resize_matrix(size_in, size_out)
        torch.testing.assert_close(signal @ matrix.T, by_interpolate)
        torch.testing.assert_close(matrix.sum(dim=1), torch.ones(size_out, dtype=torch.float64))


def test_keys_and_values_projected_before_upsampling_equal_those_of_the_upsampled_context():
    torch.manual_seed(0)
    readout = AttentionReadout(
        feature_dim=12, grid=(2, 3, 3), frames=4, width=16, heads=2, num_queries=3, query_dim=0,
        out_dim=5,
    )  # fmt: skip
    torch.nn.init.normal_(readout.temporal_embed)
    torch.nn.init.normal_(readout.cross_attn.kv.bias)
    torch.nn.init.normal_(readout.feature_norm.weight)
    torch.nn.init.normal_(readout.feature_norm.bias)
    features = torch.rand(2, 18, 12)
    normed = readout.feature_norm(features)
    context = (readout.upsample_in_time(normed) + readout.temporal_embed).flatten(1, 2)
    torch.testing.assert_close(
        readout._upsampled_keys_values(features), readout.cross_attn.kv(context)
    )


def test_given_queries_sample_the_features_at_their_location():
    readout = AttentionReadout(
        feature_dim=8, grid=(2, 3, 4), frames=4, width=16, heads=2, num_queries=0, query_dim=5,
        out_dim=6,
    )  # fmt: skip
    x = torch.rand(1, 4, 12, 8)
    frame, row, column = 2, 1, 3  # the centre of this token: raster-normalised (t, y, x)
    location = torch.tensor([[[(frame + 0.5) / 4, (row + 0.5) / 3, (column + 0.5) / 4]]])
    torch.testing.assert_close(readout.sample(x, location)[0, 0], x[0, frame, row * 4 + column])
    assert torch.all(readout(torch.rand(3, 24, 8), torch.rand(3, 9, 5)) == 0)  # neutral start
    torch.nn.init.normal_(readout.head.weight)  # as after some training
    features, queries = torch.rand(3, 24, 8), torch.rand(3, 9, 5)
    outputs = readout(features, queries)
    assert outputs.shape == (3, 9, 6)
    moved = queries.clone()
    moved[:, 0, 1] += 0.3  # only query 0 moves: only its outputs change
    changed = (readout(features, moved) - outputs).abs().amax(dim=(0, 2))
    assert changed[0] > 0 and torch.all(changed[1:] == 0)


def test_weights_round_trip(tmp_path):
    cfg = ModelConfig(16, 2, 2, 32, (2, 4, 4), qk_norm=False, parallel_blocks=False, bias=True)
    model = MaskedAutoencoder(VideoViT(cfg, 4, 8), DECODER)
    save_mae(tmp_path / "w.pt", model.state_dict(), cfg, DECODER, 4, 8)
    encoder = load_encoder(tmp_path / "w.pt")
    video = torch.rand(1, 4, 8, 8, 3)
    torch.testing.assert_close(encoder(video), model.encoder.eval()(video))
    assert not any(p.requires_grad for p in encoder.parameters())


def anonymous_bytes() -> int:
    """This process's resident memory that no file backs (Linux /proc: RssAnon), where a copy
    of the weights would live; pages of a mapped file are the page cache's."""
    with open("/proc/self/status") as status:
        (line,) = [line for line in status if line.startswith("RssAnon:")]
    return int(line.split()[1]) * 1024


def test_loading_maps_the_weights_instead_of_copying_them(tmp_path):
    cfg = ModelConfig(256, 16, 4, 1024, (2, 4, 4), qk_norm=False, parallel_blocks=False, bias=True)
    state = {f"encoder.{key}": value for key, value in VideoViT(cfg, 4, 8).state_dict().items()}
    save_mae(tmp_path / "w.pt", state, cfg, None, 4, 8)
    file_bytes = (tmp_path / "w.pt").stat().st_size  # about 50 MB
    gc.collect()
    before = anonymous_bytes()
    encoder = load_encoder(tmp_path / "w.pt")
    # a built model plus a loaded state dict would be two copies; the mapped file is read once,
    # through the page cache, to check its digest
    assert anonymous_bytes() - before < 0.2 * file_bytes
    assert all(parameter.device.type == "cpu" for parameter in encoder.parameters())
    assert encoder(torch.rand(1, 4, 8, 8, 3)).isfinite().all()


class Exploit:
    def __reduce__(self):
        return (print, ("this pickle runs code",))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    torch.save({"format": "fourds-mae-v1", "payload": Exploit()}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match="not a loadable fourds weights file"):
        load_encoder(tmp_path / "evil.pt")


def test_missing_weights_name_the_fix(tmp_path):
    """Where weights come from: the pretrain stage, the shipped reference, an official release."""
    with pytest.raises(WeightsError) as raised:
        load_encoder(tmp_path / "none.pt")
    for where in (
        "dvc repro pretrain@",
        "dvc pull reports/reference/checkpoints.dvc",
        "docs/official-checkpoints.md",
    ):
        assert where in str(raised.value)


def _randomised(readout: AttentionReadout) -> AttentionReadout:
    """`readout` with every parameter drawn at random (its init zeros some)."""
    for parameter in readout.parameters():
        torch.nn.init.normal_(parameter, std=0.5)
    return readout


def test_one_learned_query_attends_in_feature_space_as_over_projected_keys_and_values():
    torch.manual_seed(0)
    readout = _randomised(AttentionReadout(
        feature_dim=12, grid=(2, 3, 3), frames=4, width=16, heads=2, num_queries=1, query_dim=0,
        out_dim=3,
    ))  # fmt: skip
    assert readout.attends_in_feature_space()
    features = torch.rand(4, 18, 12)
    keys_values = readout._upsampled_keys_values(features)
    expected = readout.cross_attn(readout.queries, keys_values=keys_values)
    got = readout.attend_in_feature_space(features)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    parameters = list(readout.parameters())
    grads = torch.autograd.grad(got.sin().sum(), parameters, allow_unused=True)
    expected_grads = torch.autograd.grad(expected.sin().sum(), parameters, allow_unused=True)
    for name, grad, expected_grad in zip(
        [name for name, _ in readout.named_parameters()], grads, expected_grads, strict=True
    ):
        if expected_grad is not None:
            torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-4, msg=name)


def test_many_learned_queries_and_given_queries_attend_over_keys_and_values():
    many = AttentionReadout(
        feature_dim=12, grid=(2, 3, 3), frames=4, width=16, heads=2, num_queries=8, query_dim=0,
        out_dim=3,
    )  # fmt: skip
    given = AttentionReadout(
        feature_dim=12, grid=(2, 3, 3), frames=4, width=16, heads=2, num_queries=0, query_dim=5,
        out_dim=3,
    )  # fmt: skip
    assert not many.attends_in_feature_space() and not given.attends_in_feature_space()
