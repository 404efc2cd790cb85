"""Curation of bad and unusual inputs: every per-source failure is a rejection with a reason,
the output is replaced whole, and nothing wrong slips through. Fixtures are made by the tests."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from fourds.atomic import OutputError
from fourds.cli import main
from fourds.config import CurateConfig
from fourds.data import curate as curate_module
from fourds.data.curate import curate
from fourds.data.decode import decode_video
from fourds.data.shards import SPLITS, ShardWriter, index_name, load_split
from fourds.data.video import VideoError
from tests.data.real_videos import blocks, damage, gif_screen, remux, with_long_audio, write

CFG = CurateConfig(4, 2, 10, 16, 8, 0.0, "center")  # 10-frame pretrain segments


def pretrain_dir(root: Path) -> Path:
    split = root / "data" / "pretrain"
    split.mkdir(parents=True, exist_ok=True)
    return split


def reasons(manifest: dict) -> dict[str, str]:
    return {entry["path"]: entry["reason"] for entry in manifest["rejected"]}


def test_an_unreadable_source_is_rejected_and_the_run_goes_on(tmp_path, monkeypatch):
    split = pretrain_dir(tmp_path)
    write(split / "good.mp4", blocks(20, 48, 64, seed=1))
    locked = write(split / "locked.mp4", blocks(20, 48, 64, seed=2))
    digest = curate_module.file_digest

    def refuse(path):  # as root, chmod 000 would not stop the read
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return digest(path)

    monkeypatch.setattr(curate_module, "file_digest", refuse)
    manifest = curate(tmp_path / "data", tmp_path / "out", CFG)
    assert reasons(manifest) == {"locked.mp4": "cannot read (Permission denied)"}
    assert {clip["path"] for clip in manifest["clips"]} == {"good.mp4"}


def corrupt_sidecars(corpus: Path) -> dict[str, str]:
    """Break the sidecar of every pretrain video of a copy of the tiny corpus but the first,
    each another way; returns video name -> the phrase its rejection must contain."""
    videos = sorted((corpus / "pretrain").glob("*.mp4"))
    sidecars = [video.with_suffix(".npz") for video in videos]
    assert len(videos) >= 2
    extra = corpus / "pretrain"
    cases = {}
    # cut short
    data = sidecars[1].read_bytes()
    sidecars[1].write_bytes(data[: len(data) // 2])
    cases[videos[1].name] = "unreadable ground-truth sidecar"
    # more copies of the first video (re-encoded, so not duplicates) with other sidecars
    with np.load(sidecars[0]) as archive:
        truth = dict(archive)
    frames = decode_video(videos[0], 32).frames
    for name, change, phrase in [
        ("missing_key", lambda t: t.pop("extrinsics"), "missing ground-truth array 'extrinsics'"),
        ("nan_camera", lambda t: t["extrinsics"].__setitem__((0, 0, 0), np.nan), "NaN"),
        ("short_depth", lambda t: t.update(depth=t["depth"][:-1]), "frame count"),
        ("object_label", lambda t: t.update(label=np.array([{}], dtype=object)), "object"),
    ]:
        copy = {key: value.copy() for key, value in truth.items()}
        change(copy)
        video = write(extra / f"{name}.avi", frames[:, :, :, ::-1].copy())  # other content
        np.savez(video.with_suffix(".npz"), **copy)
        cases[video.name] = phrase
    return cases


def test_a_bad_ground_truth_sidecar_rejects_its_source_only(tiny_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    cases = corrupt_sidecars(corpus)
    manifest = curate(corpus, tmp_path / "out", CurateConfig(4, 2, 6, 16, 8, 0.0, "center"))
    found = reasons(manifest)
    for name, phrase in cases.items():
        assert phrase in found[name], (name, found[name])
    kept = {clip["path"] for clip in manifest["clips"] if clip["split"] == "pretrain"}
    assert kept == {"00000.mp4"}
    assert (tmp_path / "out" / "shards").is_dir()


def test_a_crash_leaves_the_previous_output_and_no_partial_shards(tiny_corpus, tmp_path):
    out = tmp_path / "out"
    first = curate(tiny_corpus, out, CurateConfig(4, 2, 6, 16, 1, 0.0, "center"))
    before = {path.name: path.read_bytes() for path in (out / "shards").iterdir()}
    flush = ShardWriter.flush

    def crash_on_readout(self):
        if self.split == "readout-test":
            raise RuntimeError("the machine went away")
        flush(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ShardWriter, "flush", crash_on_readout)
        with pytest.raises(RuntimeError, match="went away"):
            curate(tiny_corpus, out, CurateConfig(4, 2, 6, 16, 8, 0.0, "center"))
    after = {path.name: path.read_bytes() for path in (out / "shards").iterdir()}
    assert after == before
    assert json.loads((out / "manifest.json").read_text()) == first
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]  # nothing half-done


def test_curating_twice_into_one_folder_leaves_no_stale_shards(tiny_corpus, tmp_path):
    out = tmp_path / "out"
    curate(tiny_corpus, out, CurateConfig(4, 2, 6, 16, 1, 0.0, "center"))  # a shard per clip
    manifest = curate(tiny_corpus, out, CurateConfig(4, 2, 6, 16, 64, 0.0, "center"))
    shards = sorted(path.name for path in (out / "shards").iterdir())
    indexes = {index_name(split) for split in SPLITS}
    assert shards == sorted({clip["shard"] for clip in manifest["clips"]} | indexes)
    assert len(load_split(out / "shards", "pretrain")["video"]) == sum(
        clip["split"] == "pretrain" for clip in manifest["clips"]
    )


def test_a_missing_or_empty_data_folder_is_an_error_naming_it(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match=r"--data .*nowhere: no such folder"):
        curate(tmp_path / "nowhere", tmp_path / "out", CFG)
    (tmp_path / "empty" / "pretrain").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"--data .*empty: no videos"):
        curate(tmp_path / "empty", tmp_path / "out", CFG)
    params = Path(__file__).resolve().parents[2] / "params.yaml"
    code = main(["curate", "--params", str(params), "--data", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 2 and "nowhere: no such folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_sources_in_sub_folders_are_read_with_their_relative_path(tmp_path):
    split = pretrain_dir(tmp_path)
    (split / "phone" / "2024").mkdir(parents=True)
    write(split / "phone" / "2024" / "walk.mp4", blocks(20, 48, 64, seed=1))
    (split / ".cache").mkdir()
    write(split / ".cache" / "hidden.mp4", blocks(20, 48, 64, seed=2))
    manifest = curate(tmp_path / "data", tmp_path / "out", CFG)
    assert {clip["path"] for clip in manifest["clips"]} == {"phone/2024/walk.mp4"}
    assert manifest["rejected"] == []


def test_symlinked_folders_are_followed_once_and_loops_are_reported(tmp_path):
    split = pretrain_dir(tmp_path)
    write(split / "home.mp4", blocks(20, 48, 64, seed=1))
    trip = tmp_path / "elsewhere" / "trip"
    trip.mkdir(parents=True)
    write(trip / "walk.mp4", blocks(20, 48, 64, seed=2))
    (split / "trip").symlink_to(trip, target_is_directory=True)
    (split / "trip_again").symlink_to(trip, target_is_directory=True)  # a second path to it
    (trip / "back").symlink_to(split, target_is_directory=True)  # a loop through the link
    (split / "gone.mp4").symlink_to(tmp_path / "nothing.mp4")  # a link to nothing
    manifest = curate(tmp_path / "data", tmp_path / "out", CFG)
    assert {clip["path"] for clip in manifest["clips"]} == {"home.mp4", "trip/walk.mp4"}
    assert reasons(manifest) == {
        "trip_again": f"a second path to {split / 'trip'} (both are {trip}): listed once",
        "trip/back": f"a symbolic link to {split}, which holds it: a loop, not followed",
        "gone.mp4": "a symbolic link that cannot be followed (No such file or directory)",
    }


def test_an_output_inside_what_a_link_leads_to_is_refused(tmp_path):
    split = pretrain_dir(tmp_path)
    write(split / "home.mp4", blocks(20, 48, 64, seed=1))
    trip = tmp_path / "elsewhere" / "trip"
    trip.mkdir(parents=True)
    write(trip / "walk.mp4", blocks(20, 48, 64, seed=2))
    (split / "trip").symlink_to(trip, target_is_directory=True)
    with pytest.raises(OutputError, match="overlaps the input"):
        curate(tmp_path / "data", trip / "curated", CFG)
    assert not (trip / "curated").exists()
    # a linked file that lies in the output: curating there again would read its own output
    curate(tmp_path / "data", tmp_path / "out", CFG)
    (split / "manifest.json").symlink_to(tmp_path / "out" / "manifest.json")
    with pytest.raises(OutputError, match="overlaps the input"):
        curate(tmp_path / "data", tmp_path / "out", CFG)


def test_audio_longer_than_the_video_is_not_truncation(tmp_path):
    path = with_long_audio(tmp_path / "talk.mp4", blocks(20, 48, 64, seed=1), fps=10,
                           audio_seconds=5.0)  # fmt: skip
    video = decode_video(path, 16)  # 2 s of video in a 5 s container
    assert video.source_frames == 20


@pytest.mark.parametrize("suffix, at", [(".avi", 0.7), (".gif", 0.5)])
def test_damage_the_decoder_would_conceal_is_rejected(tmp_path, suffix, at):
    good = write(tmp_path / f"good{suffix}", blocks(20, 48, 64, seed=1))
    bad = damage(good, tmp_path / f"bad{suffix}", at)
    decode_video(good, 16)
    with pytest.raises(VideoError, match=r"bad\.(avi|gif): (damaged|undecodable|frame)"):
        decode_video(bad, 16)


@pytest.mark.parametrize("suffix, height, width", [(".mp4", 48, 64), (".webm", 47, 95)])
def test_the_same_stream_in_another_container_is_a_duplicate(tmp_path, suffix, height, width):
    split = pretrain_dir(tmp_path)
    source = write(tmp_path / f"walk{suffix}", blocks(20, height, width, seed=1))  # odd sizes too
    shutil.copy(source, split / f"a{suffix}")
    remux(source, split / "b.mkv", "matroska")
    assert (split / f"a{suffix}").read_bytes() != (split / "b.mkv").read_bytes()
    manifest = curate(tmp_path / "data", tmp_path / "out", CFG)
    assert reasons(manifest)["b.mkv"].startswith("duplicate: the same decoded frames as")
    assert manifest["clips"][0]["content_digest"] == decode_video(source, 16).content_digest


def test_a_gif_declaring_a_huge_screen_is_refused_before_decoding(tmp_path):
    small = write(tmp_path / "small.gif", blocks(4, 48, 64, seed=1))
    huge = gif_screen(small, tmp_path / "huge.gif", 16000, 16000)
    with pytest.raises(VideoError, match=r"16000x16000 = 256000000 pixels exceed"):
        decode_video(huge, 16)
    split = pretrain_dir(tmp_path)
    shutil.copy(huge, split / "huge.gif")
    write(split / "fine.mp4", blocks(20, 48, 64, seed=2))
    limited = CurateConfig(4, 2, 10, 16, 8, 0.0, "center", max_frame_pixels=48 * 64)
    manifest = curate(tmp_path / "data", tmp_path / "out", limited)
    assert "curate.max_frame_pixels=3072" in reasons(manifest)["huge.gif"]
    assert {clip["path"] for clip in manifest["clips"]} == {"fine.mp4"}


def test_frames_queued_for_conversion_stay_within_the_byte_budget(monkeypatch):
    import time
    from concurrent.futures import ThreadPoolExecutor

    import av

    from fourds.data import decode

    image = np.zeros((48, 64, 3), np.uint8)
    frames = [av.VideoFrame.from_ndarray(image, format="rgb24") for _ in range(12)]
    frame_bytes = sum(plane.buffer_size for plane in frames[0].planes)
    queued = []

    def slow_conversion(frame, size, crop, aspect, reformatter):  # the decoder outruns it
        time.sleep(0.01)
        queued.append(len(sampler._in_flight))
        return np.zeros((size, size, 3), np.uint8)

    monkeypatch.setattr(decode, "_upright", slow_conversion)
    with ThreadPoolExecutor(max_workers=1) as pool:
        sampler = decode._Resampler(16, "center", Fraction(1), 0.0, pool, None, 3 * frame_bytes, 99)
        for index, frame in enumerate(frames):
            sampler.add(frame, index / 10, index)
        assert sampler.finish(0.1)[0].shape == (12, 16, 16, 3)
    assert max(queued) <= 3  # frames held for conversion: the budget allows 3


def test_a_tiny_conversion_queue_gives_the_same_frames(tmp_path):
    path = write(tmp_path / "clip.avi", blocks(12, 48, 64, seed=1))
    queued = decode_video(path, 16, max_queued_bytes=1)  # one frame waits at a time
    np.testing.assert_array_equal(queued.frames, decode_video(path, 16).frames)


def test_a_source_without_the_sidecar_its_split_has_is_rejected_alone(tiny_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    (corpus / "pretrain" / "00001.npz").unlink()  # the shard rows could no longer stack
    manifest = curate(corpus, tmp_path / "out", CurateConfig(4, 2, 6, 16, 8, 0.0, "center"))
    assert "the other sources of pretrain have a .npz sidecar" in reasons(manifest)["00001.mp4"]
    assert len(load_split(tmp_path / "out" / "shards", "pretrain")["depth"]) == 2


def test_labels_of_different_lengths_still_share_a_split(tiny_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    for name, label in (("00000", "pan"), ("00001", "static")):  # dtypes <U3 and <U6
        sidecar = corpus / "pretrain" / f"{name}.npz"
        with np.load(sidecar) as archive:
            truth = dict(archive)
        np.savez(sidecar, **{**truth, "label": np.array(label)})
    manifest = curate(corpus, tmp_path / "out", CurateConfig(4, 2, 6, 16, 8, 0.0, "center"))
    assert manifest["rejected"] == []
    labels = load_split(tmp_path / "out" / "shards", "pretrain")["label"]
    assert sorted(set(labels.tolist())) == ["pan", "static"]
