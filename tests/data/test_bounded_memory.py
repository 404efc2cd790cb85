"""Memory stays bounded whatever a small file claims: each test writes files of at most a few
MB and runs curation or the reader on them in a fresh process whose peak resident memory
(getrusage) must stay under BOUND_MIB. Before these bounds (f6b1648) the same cases peaked at
0.96 to 4.8 GiB (each test says its own); now at 55 to 245 MiB.

The four classes of issue 22: a long video of tiny frames; a variable-frame-rate file with a
huge timestamp gap resampled by curate.fps; a compressed ground-truth sidecar that inflates;
TAP-Vid pickles whose frames expand (many references to one tiny JPEG or one tiny frame of
pixels, or one huge JPEG referenced many times). And three found measuring them: a short video
of large frames, every decoded frame of which was kept alive by a reference cycle; a ScanNet
scene of small PNGs that decode large; RealEstate10K cameras naming one frame many times.
"""

from __future__ import annotations

import json
import pickle
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest

from fourds.config import CurateConfig
from fourds.data.benchmarks import read_benchmark
from fourds.data.curate import curate
from fourds.data.decode import decode_video
from fourds.data.readers import ReaderError
from fourds.data.readers.perception_test import read_point_tracks
from fourds.data.readers.tapvid import read_tapvid
from tests.benchmark_files import camera_line, jpeg, point_tracking_entry, write_png16
from tests.data.real_videos import blocks, write

REPO_ROOT = Path(__file__).resolve().parents[2]
BOUND_MIB = 500


# Runs the command in its argv and prints its output, then its peak resident memory in KiB.
# getrusage(RUSAGE_CHILDREN) is measured in this small process, not in pytest: a child's peak
# counts the memory of the process that started it (its resident pages at fork or vfork). For
# the same reason large fixtures are written in a child (`in_child`), so that pytest's own
# memory, and the peak of every child a later test starts, does not grow with them.
MEASURE = """
import resource, subprocess, sys
result = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True)
print(result.stdout.strip())
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(result.returncode)
"""


def call(function: str, *args: str) -> list[str]:
    """The command that calls `function` of this module with `args` in a fresh Python and
    prints what it returns."""
    code = f"import sys\nfrom {__name__} import {function}\nprint({function}(*sys.argv[1:]))"
    return [sys.executable, "-c", code, *args]


def in_child(function: str, *args: str) -> str:
    """What `function` of this module returns (as printed), called with `args` in a fresh
    Python."""
    result = subprocess.run(call(function, *args), cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def measured(function: str, *args: str) -> tuple[str, float]:
    """What `function` of this module returns (as printed), called with `args` in a fresh
    Python, and the peak resident memory of that process in MiB."""
    command = [sys.executable, "-c", MEASURE, *call(function, *args)]
    result = subprocess.run(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert result.returncode == 0, result.stdout
    *_, output, peak = result.stdout.strip().splitlines()
    return output, int(peak) / 1024


def curate_reasons(data_dir: str, out_dir: str, resolution: str, fps: str) -> str:
    """Curate `data_dir` with the default limits; the rejection reasons by file name, as JSON."""
    cfg = CurateConfig(4, 2, 10, int(resolution), 8, float(fps), "center")
    manifest = curate(data_dir, out_dir, cfg)
    return json.dumps({Path(entry["path"]).name: entry["reason"] for entry in manifest["rejected"]})


def curated_in_child(root: Path, resolution: int, fps: float) -> tuple[dict[str, str], float]:
    """Curate `root`/data into `root`/out in a fresh process: rejection reasons by file name,
    and the peak memory in MiB."""
    args = (str(root / "data"), str(root / "out"), str(resolution), str(fps))
    output, peak = measured("curate_reasons", *args)
    return json.loads(output), peak


def decoded_count(path: str, size: str) -> int:
    """Decode a video at size x size; how many frames it gives."""
    return len(decode_video(path, int(size)).frames)


def tapvid_error(path: str) -> str:
    """Read a TAP-Vid pickle; the ReaderError's message, or the frames read."""
    try:
        return f"read {sum(len(sample.video) for sample in read_tapvid(path))} frames"
    except ReaderError as error:
        return str(error)


def test_a_long_video_of_tiny_frames_is_rejected_at_the_decoded_limit(tmp_path):
    # 4000 frames of 16x16 are 786 MB at 256x256 (peaked at 2325 MiB); the default
    # max_decoded_mib (96) holds 512
    split = tmp_path / "data" / "pretrain"
    split.mkdir(parents=True)
    write(split / "long.mp4", np.zeros((4000, 16, 16, 3), np.uint8), fps=30)
    reasons, peak = curated_in_child(tmp_path, 256, 0)
    assert "more than 512 frames at 256x256" in reasons["long.mp4"]
    assert "curate.max_decoded_mib=96" in reasons["long.mp4"]
    assert peak < BOUND_MIB


def test_a_timestamp_gap_is_not_filled_past_the_decoded_limit(tmp_path):
    # resampled to 10 fps, a 20,000 s gap is 200,000 frames: 2.4 GB at 64x64 (peaked at 4892 MiB)
    split = tmp_path / "data" / "pretrain"
    split.mkdir(parents=True)
    times = [k / 10 for k in range(20)] + [20_000 + k / 10 for k in range(20)]
    write(split / "gap.mp4", blocks(40, 16, 16), times=times)
    reasons, peak = curated_in_child(tmp_path, 64, 10)
    assert "more than 8192 frames at 64x64 and 10 fps by source frame 20" in reasons["gap.mp4"]
    assert peak < BOUND_MIB


def write_8k(path: str, frames: str) -> int:
    """Write an H.264 MP4 of `frames` 7680x4320 frames, flat grey but for a strip that changes
    (about 100 KB); returns its size in bytes."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 7680, 4320, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        frame = av.VideoFrame(7680, 4320, "yuv420p")
        for plane in frame.planes:
            np.frombuffer(plane, np.uint8)[:] = 128
        for index in range(int(frames)):
            np.frombuffer(frame.planes[0], np.uint8)[:64] = 5 * index
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return Path(path).stat().st_size


def test_decoded_frames_are_freed_as_they_are_converted(tmp_path):
    # reading the display matrix through `frame.side_data` kept every decoded frame alive (a
    # reference cycle) until the garbage collector ran: 40 frames of 8K peaked at 2008 MiB
    video = tmp_path / "8k.mp4"
    assert int(in_child("write_8k", str(video), "40")) < 1 << 20
    count, peak = measured("decoded_count", str(video), "16")
    assert count == "40" and peak < BOUND_MIB


def write_inflating_sidecar(path: Path, frames: int, side: int) -> None:
    """A valid ground-truth sidecar whose depth (float32) and instance (uint8) maps are
    frames x side x side zeros, deflated as they are written (never held in memory)."""
    small = {
        "intrinsics": np.broadcast_to(np.eye(3, dtype=np.float32), (frames, 3, 3)),
        "extrinsics": np.broadcast_to(np.eye(4, dtype=np.float32), (frames, 4, 4)),
        "tracks": np.zeros((1, frames, 2), np.float32),
        "visible": np.ones((1, frames), bool),
        "track_instance": np.zeros(1, np.int32),
        "boxes": np.zeros((1, frames, 4), np.float32),
        "box_visible": np.ones((1, frames), bool),
        "label": np.array("thing"),
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, dtype in (("depth", np.float32), ("instances", np.uint8)):
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                header = {"descr": np.dtype(dtype).str, "fortran_order": False}
                np.lib.format.write_array_header_1_0(
                    member, {**header, "shape": (frames, side, side)}
                )
                for _ in range(frames):
                    member.write(bytes(side * side * np.dtype(dtype).itemsize))
        for key, value in small.items():
            with archive.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array(member, value)


def test_a_sidecar_that_inflates_is_rejected_before_it_is_loaded(tmp_path):
    # 12 depth and instance maps of 4000x4000: 960 MB from under 1 MB of zip (peaked at 981 MiB)
    split = tmp_path / "data" / "pretrain"
    split.mkdir(parents=True)
    write(split / "clip.mp4", blocks(12, 48, 64))
    write_inflating_sidecar(split / "clip.npz", 12, 4000)
    assert (split / "clip.npz").stat().st_size < 1 << 20
    reasons, peak = curated_in_child(tmp_path, 16, 0)
    reason = reasons["clip.mp4"]
    assert "915 MiB as declared" in reason and "curate.max_decoded_mib leaves" in reason
    assert peak < BOUND_MIB


def tapvid_pickle(path: Path, video) -> Path:
    """One TAP-Vid record of `video` (pixels or JPEG strings) with one point, pickled."""
    count = len(video)
    record = {
        "video": video,
        "points": np.zeros((1, count, 2), np.float32),
        "occluded": np.zeros((1, count), bool),
    }
    path.write_bytes(pickle.dumps([record], protocol=4))  # a shared object: one memo reference
    return path


def write_repeated_jpeg(path: str) -> int:
    """Write a TAP-Vid pickle of 20 references to one 5000x5000 JPEG (75 MB decoded, yuvj444p);
    returns its size in bytes."""
    huge = jpeg(np.full((5000, 5000, 3), 90, np.uint8))
    return tapvid_pickle(Path(path), [huge] * 20).stat().st_size


def test_tapvid_frames_that_expand_are_refused_or_decoded_one_at_a_time(tmp_path):
    tiny = jpeg(np.full((16, 16, 3), 90, np.uint8))
    # 8000 frames at 256x256 are 1.5 GB (peaked at 3.1 GiB): over the 1 GiB a small file may
    # decode to
    many = tapvid_pickle(tmp_path / "many.pkl", [tiny] * 8000)
    pixels = tapvid_pickle(tmp_path / "pixels.pkl", np.zeros((8000, 1, 1, 3), np.uint8))
    # 20 references to one 5000x5000 JPEG: every decoded frame held (peaked at 1520 MiB)
    repeated = tmp_path / "repeated.pkl"
    assert int(in_child("write_repeated_jpeg", str(repeated))) < 5 << 20
    for path in (many, pixels):
        assert path.stat().st_size < 5 << 20
    for path in (many, pixels):
        message, peak = measured("tapvid_error", str(path))
        assert "8000 frames at 256x256 would take 1500 MiB decoded, over the 1024 MiB" in message
        assert peak < BOUND_MIB
    message, peak = measured("tapvid_error", str(repeated))
    assert message == "read 20 frames" and peak < BOUND_MIB


def benchmark_error(format: str, path: str, size: str) -> str:
    """Read a benchmark folder; the ReaderError's message, or the frames read."""
    try:
        samples = read_benchmark(format, path, int(size))
    except ReaderError as error:
        return str(error)
    return f"read {sum(len(sample.video) for sample in samples)} frames"


def write_scannet_scene(scene: Path, frames: int, side: int) -> None:
    """A ScanNet-style scene of `frames` side x side depth PNGs of zeros, each with a tiny
    colour JPEG, an identity pose, and the intrinsics."""
    for folder in ("depth", "color", "pose", "intrinsic"):
        (scene / folder).mkdir(parents=True)
    write_png16(scene / "depth" / "0.png", np.zeros((side, side), np.uint16))
    png, colour = (scene / "depth" / "0.png").read_bytes(), jpeg(np.zeros((8, 8, 3), np.uint8))
    for index in range(frames):
        (scene / "depth" / f"{index}.png").write_bytes(png)
        (scene / "color" / f"{index}.jpg").write_bytes(colour)
        np.savetxt(scene / "pose" / f"{index}.txt", np.eye(4))
    np.savetxt(scene / "intrinsic" / "intrinsic_depth.txt", np.eye(4))


def test_a_scannet_scene_of_small_pngs_that_decode_large_is_refused(tmp_path):
    # 12 PNGs of 4000x4000 zeros (38 KB each): 1.3 GB of depth and colour (peaked at 1893 MiB)
    write_scannet_scene(tmp_path / "scannet" / "scene0000_00", 12, 4000)
    message, peak = measured("benchmark_error", "scannet", str(tmp_path / "scannet"), "64")
    assert "12 frames of 4000x4000 depth and colour would take 1281 MiB decoded" in message
    assert peak < BOUND_MIB


def test_realestate10k_cameras_naming_one_frame_many_times_are_refused(tmp_path):
    # 8000 cameras 1 us apart all show frame 0: 1.5 GB at 256x256 (peaked at 1567 MiB)
    write(tmp_path / "clip.mp4", blocks(10, 32, 32))
    lines = [camera_line(stamp, [0.5, 0.5, 0.5, 0.5], np.eye(4)) for stamp in range(8000)]
    (tmp_path / "clip.txt").write_text("url\n" + "\n".join(lines) + "\n")
    message, peak = measured("benchmark_error", "realestate10k", str(tmp_path), "256")
    assert "8000 cameras' frames at 256x256 would take 1500 MiB decoded" in message
    assert peak < BOUND_MIB


def write_point_tracks(path: str, points: str, annotated: str) -> int:
    """A Perception Test annotation file as released (tests.benchmark_files' entries): 100
    videos of 300 frames, each with `points` tracks annotated at `annotated` frames, then one
    video without point tracks; returns its size in bytes."""
    rng, frames = np.random.default_rng(0), 300
    with open(path, "w") as file:
        for number in range(100):
            tracks = rng.random((int(points), frames, 2))
            visible = np.zeros((int(points), frames), bool)
            visible[:, rng.permutation(frames)[: int(annotated)]] = True
            entry = point_tracking_entry(f"video_{number:04d}", "valid", tracks, visible)
            file.write(("{" if number == 0 else ", ") + f'"video_{number:04d}": ')
            file.write(json.dumps(entry))
        metadata = {"video_id": "video_9999", "num_frames": frames, "split": "valid"}
        file.write(f', "video_9999": {json.dumps({"metadata": metadata, "point_tracking": []})}')
        file.write("}")
    return Path(path).stat().st_size


def point_tracks_read(path: str) -> str:
    """Read a Perception Test annotation file: JSON of what it gave (the ReaderError's message,
    or the entries read) and the peak resident memory in KiB before it was read."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        read = f"read {len(read_point_tracks(path))} entries"
    except ReaderError as error:
        read = str(error)
    return json.dumps({"read": read, "before": before})


def point_tracks_within(path: str, spare: str) -> str:
    """Read a Perception Test annotation file with `spare` bytes of address space past those
    the process maps; the ReaderError's message, or the entries read."""
    status = Path("/proc/self/status").read_text()
    mapped = int(status.split("VmSize:")[1].split()[0]) << 10
    resource.setrlimit(resource.RLIMIT_AS, (mapped + int(spare), resource.RLIM_INFINITY))
    try:
        return f"read {len(read_point_tracks(path))} entries"
    except ReaderError as error:
        return str(error)


@pytest.mark.parametrize(
    ("points", "annotated", "read"),
    [
        # 20 tracks of 270 frames a video: read holding 0.7 times its size (2.5 times before)
        (20, 270, "read 100 entries"),
        # 2000 tracks of one frame a video, which keep more than the file: refused holding 1.7
        # times its size (read holding 4.9 times before)
        (2000, 1, "take more than the 36 MiB of memory a file of 24 MiB may keep"),
    ],
)
def test_a_perception_test_file_is_read_within_three_times_its_size(
    tmp_path, points, annotated, read
):
    path = tmp_path / "all_valid.json"
    size = int(in_child("write_point_tracks", str(path), str(points), str(annotated)))
    assert 20 << 20 < size < 50 << 20
    output, peak = measured("point_tracks_read", str(path))
    result = json.loads(output)
    assert (peak - result["before"] / 1024) * (1 << 20) < 3 * size
    assert read in result["read"] and "\n" not in result["read"]


@pytest.mark.skipif(sys.platform != "linux", reason="reads the address space from /proc")
def test_a_perception_test_file_out_of_memory_is_one_line(tmp_path):
    # with a quarter of its size to spare, the file's bytes did not fit: a MemoryError traceback
    path = tmp_path / "all_valid.json"
    size = int(in_child("write_point_tracks", str(path), "20", "270"))
    message = in_child("point_tracks_within", str(path), str(size // 4))
    assert message.startswith(f"{path}: out of memory decoding the point tracks of its 23 MiB")
