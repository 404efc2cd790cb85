"""Curation of messy real-world video: containers, codecs, sizes, rotation, frame rates, and
every kind of bad file. All fixtures are written by the tests with PyAV."""

from __future__ import annotations

import hashlib
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from fourds.config import CurateConfig
from fourds.data.curate import curate
from fourds.data.decode import decode_video
from fourds.data.shards import load_split
from fourds.data.video import VideoError
from tests.data.real_videos import (
    audio_only,
    blocks,
    corrupt_payload,
    orient_mp4,
    truncate,
    write,
)

GREEN, RED, BLUE = (0, 200, 0), (200, 0, 0), (0, 0, 200)


def thirds(frames: int, height: int, width: int) -> np.ndarray:
    """Frames whose left, middle and right thirds are green, red and blue."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 4], image[:, width // 4 : 3 * width // 4] = GREEN, RED
    image[:, 3 * width // 4 :] = BLUE
    return np.repeat(image[None], frames, axis=0)


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".avi", ".gif"])
def test_every_container_and_codec_decodes_to_the_centre_crop(suffix, tmp_path):
    path = write(tmp_path / f"clip{suffix}", thirds(12, 48, 96))  # wide: 2:1
    video = decode_video(path, size=16)
    assert video.frames.shape == (12, 16, 16, 3) and video.source_frames == 12
    np.testing.assert_array_equal(video.source_index, np.arange(12))
    # The centre crop of a 2:1 frame is its middle half: all red.
    mean = video.frames[:, 2:-2, 2:-2].reshape(-1, 3).mean(axis=0)
    assert mean[0] > 150 and mean[1] < 50 and mean[2] < 50, mean


def test_odd_sizes_and_the_stretch_policy(tmp_path):
    path = write(tmp_path / "odd.webm", thirds(6, 47, 95))
    centre = decode_video(path, size=16, crop="center").frames
    stretched = decode_video(path, size=16, crop="stretch").frames
    assert centre.shape == stretched.shape == (6, 16, 16, 3)
    assert stretched[0, 8, 1, 1] > 150 and stretched[0, 8, 14, 2] > 150  # green and blue kept
    assert centre[0, 8, 1, 0] > 150 and centre[0, 8, 14, 0] > 150  # only red in the middle


def test_rotation_metadata_turns_frames_upright(tmp_path):
    frames = np.zeros((4, 48, 64, 3), np.uint8)
    frames[:, :16, :16] = 255  # a white block at the stored top-left
    plain = write(tmp_path / "plain.mp4", frames)
    rotated = orient_mp4(plain, tmp_path / "portrait.mp4")
    upright = decode_video(rotated, size=32, crop="stretch").frames[0].mean(axis=2)
    # Turned 90 degrees clockwise for display, the block is at the top-right.
    assert upright[:8, -8:].mean() > 200 and upright[:8, :8].mean() < 50
    assert decode_video(plain, size=32, crop="stretch").frames[0, :8, :8].mean() > 200


ORIENTATIONS = {  # display matrices ((a, b), (c, d)): the eight a player can show
    "upright": ((1, 0), (0, 1)),
    "turned clockwise": ((0, 1), (-1, 0)),
    "turned half way": ((-1, 0), (0, -1)),
    "turned anticlockwise": ((0, -1), (1, 0)),
    "mirrored left to right": ((-1, 0), (0, 1)),
    "mirrored top to bottom": ((1, 0), (0, -1)),
    "transposed": ((0, 1), (1, 0)),
    "anti-transposed": ((0, -1), (-1, 0)),
}


def as_displayed(grid: np.ndarray, matrix: tuple) -> np.ndarray:
    """[n, n] cells as a player shows them: the cell at column x, row y moves to column
    a x + c y, row b x + d y (FFmpeg's display matrix), shifted back to start at 0."""
    (a, b), (c, d) = matrix
    rows, columns = np.indices(grid.shape)
    shown_columns, shown_rows = a * columns + c * rows, b * columns + d * rows
    shown = np.empty_like(grid)
    shown[shown_rows - shown_rows.min(), shown_columns - shown_columns.min()] = grid
    return shown


@pytest.mark.parametrize("matrix", ORIENTATIONS.values(), ids=ORIENTATIONS)
def test_display_matrix_rotations_and_mirrors_show_frames_as_a_player_does(matrix, tmp_path):
    grid = (np.arange(16, dtype=np.uint8) * 16 + 8).reshape(4, 4)  # 16 grey levels, 4x4 cells
    image = grid.repeat(16, axis=0).repeat(16, axis=1)  # 64x64, 16-pixel cells
    frames = np.repeat(image[None, :, :, None], 3, axis=3).repeat(4, axis=0)
    path = orient_mp4(write(tmp_path / "plain.mp4", frames), tmp_path / "shown.mp4", matrix)
    shown = decode_video(path, size=32).frames[0, :, :, 0]  # 8-pixel cells
    cells = shown.reshape(4, 8, 4, 8)[:, 2:6, :, 2:6].mean(axis=(1, 3))
    np.testing.assert_allclose(cells, as_displayed(grid, matrix), atol=4)


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".gif"])
def test_anamorphic_frames_are_widened_by_their_sample_aspect_ratio(suffix, tmp_path):
    # Stored square, each pixel shown twice as wide as high: displayed 96x48 (2:1).
    path = write(tmp_path / f"wide{suffix}", thirds(6, 48, 48), aspect=Fraction(2, 1))
    video = decode_video(path, size=16)
    assert video.source_size == (96, 48)
    # The centre crop of a 2:1 frame is its middle half: all red.
    mean = video.frames[:, 2:-2, 2:-2].reshape(-1, 3).mean(axis=0)
    assert mean[0] > 150 and mean[1] < 50 and mean[2] < 50, mean


def test_narrow_pixels_and_a_rotation_are_shown_in_a_player_s_order(tmp_path):
    # Stored 96x48, each pixel shown half as wide as high: displayed square, nothing cropped.
    narrow = decode_video(
        write(tmp_path / "narrow.mp4", thirds(4, 48, 96), aspect=Fraction(1, 2)), 16
    )
    assert narrow.source_size == (48, 48)
    assert narrow.frames[0, 8, 1, 1] > 150 and narrow.frames[0, 8, 14, 2] > 150  # green, blue
    # Widened to 96x48 first, then turned clockwise: 48 wide, 96 high, the green quarter on top;
    # the centre crop is the red middle half.
    wide = write(tmp_path / "wide.mp4", thirds(4, 48, 48), aspect=Fraction(2, 1))
    portrait = decode_video(orient_mp4(wide, tmp_path / "portrait.mp4"), size=16)
    assert portrait.source_size == (48, 96)
    mean = portrait.frames[:, 2:-2, 2:-2].reshape(-1, 3).mean(axis=0)
    assert mean[0] > 150 and mean[1] < 50 and mean[2] < 50, mean


def test_variable_frame_rate_is_resampled_by_timestamps(tmp_path):
    times = [0.0, 0.1, 0.15, 0.4, 0.45, 0.5, 0.9, 1.0]
    frames = np.stack([np.full((32, 32, 3), 10 + 30 * i, np.uint8) for i in range(len(times))])
    path = write(tmp_path / "vfr.mp4", frames, fps=10, times=times)
    video = decode_video(path, size=16, fps=10)
    # At t = 0.0, 0.1, ... 1.0 the latest frame that started at or before it is shown.
    expected = [0, 1, 2, 2, 3, 5, 5, 5, 5, 6, 7]
    np.testing.assert_array_equal(video.source_index[:11], expected)
    levels = video.frames[:11].reshape(11, -1).mean(axis=1)
    np.testing.assert_allclose(levels, [10 + 30 * i for i in expected], atol=6)
    assert video.fps == 10 and video.source_frames == len(times)


def test_constant_rate_resampling_skips_or_repeats_frames(tmp_path):
    path = write(tmp_path / "steady.avi", blocks(20, 32, 32), fps=10)
    np.testing.assert_array_equal(decode_video(path, 16, fps=5).source_index, np.arange(0, 20, 2))
    np.testing.assert_array_equal(
        decode_video(path, 16, fps=20).source_index, np.arange(20).repeat(2)
    )


@pytest.fixture
def messy_corpus(tmp_path) -> Path:
    """A pretrain split with three good sources and one of every kind of bad file."""
    split = tmp_path / "data" / "pretrain"
    split.mkdir(parents=True)
    good = write(split / "good.mp4", blocks(20, 48, 64, seed=1))
    write(split / "good.webm", blocks(20, 48, 64, seed=2))
    orient_mp4(write(tmp_path / "portrait.mp4", blocks(20, 48, 64, seed=3)), split / "rotated.mp4")
    shutil.copy(good, split / "same_as_good.mp4")
    (split / "empty.mp4").write_bytes(b"")
    truncate(write(tmp_path / "long.webm", blocks(20, 48, 64, seed=4)), split / "cut.webm")
    (split / "notes.txt").write_text("not a video\n")
    audio_only(split / "voice.m4a")
    corrupt_payload(write(tmp_path / "noisy.mp4", blocks(20, 48, 64, seed=5)), split / "bad.mp4")
    write(split / "short.avi", blocks(3, 48, 64, seed=6))
    return tmp_path / "data"


def test_bad_inputs_are_rejected_with_reasons_and_good_ones_kept(messy_corpus, tmp_path):
    cfg = CurateConfig(4, 2, 10, 16, 8, 0.0, "center")  # 10-frame pretrain segments
    manifest = curate(messy_corpus, tmp_path / "out", cfg)

    reasons = {Path(entry["source"]).name: entry["reason"] for entry in manifest["rejected"]}
    expected = {
        "same_as_good.mp4": "duplicate: the same bytes as",
        "empty.mp4": "empty file",
        "cut.webm": "File ended prematurely",  # FFmpeg reports the cut itself
        "notes.txt": "not a readable video container",
        "voice.m4a": "no video stream",
        "bad.mp4": "undecodable",
        "short.avi": "too short",
    }
    assert set(reasons) == set(expected)
    for name, phrase in expected.items():
        assert phrase in reasons[name], (name, reasons[name])

    kept = {Path(clip["source"]).name for clip in manifest["clips"]}
    assert kept == {"good.mp4", "good.webm", "rotated.mp4"}
    assert len(manifest["clips"]) == 3 * 2  # 20 frames -> two 10-frame segments each
    video = load_split(tmp_path / "out" / "shards", "pretrain")["video"]
    for row, clip in enumerate(manifest["clips"]):
        source = messy_corpus / "pretrain" / Path(clip["source"]).name
        assert clip["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
        assert clip["sha256"] == hashlib.sha256(video[row].tobytes()).hexdigest()
        assert clip["source_frames"] == list(range(clip["frames"]["start"], clip["frames"]["stop"]))


def test_decode_errors_name_the_file(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(VideoError, match="broken.mp4: not a readable video container"):
        decode_video(path, 16)
    with pytest.raises(VideoError, match="missing.mp4: not found"):
        decode_video(tmp_path / "missing.mp4", 16)


def test_frames_nobody_wants_are_decoded_but_not_converted(tmp_path):
    path = write(tmp_path / "clip.avi", thirds(10, 48, 96), fps=10)
    video = decode_video(path, 16, wanted=lambda index: index % 3 == 0)
    assert video.frames.shape == (10, 16, 16, 3) and video.source_frames == 10
    converted = video.frames.reshape(10, -1).max(axis=1) > 0
    np.testing.assert_array_equal(converted, [index % 3 == 0 for index in range(10)])
    resampled = decode_video(path, 16, fps=20, wanted=lambda index: index % 2 == 1)
    np.testing.assert_array_equal(resampled.source_index, np.arange(10).repeat(2))
    assert (resampled.frames[1::2].reshape(10, -1).max(axis=1) > 0).all()
    assert not resampled.frames[0::2].any()
