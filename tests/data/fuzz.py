"""Seeded fuzzing of every input format fourds reads: run as a script by tests/data/test_fuzz.py.

Valid fixtures of each format are written, then mutated (bytes flipped, spans overwritten,
zeroed, duplicated, removed or cut off; in text formats, numbers replaced by nan, inf, -1,
huge values or garbage and lines dropped or repeated; in TAP-Vid records, an entry, a frame or
the record replaced by a value of the wrong type or shape; Perception Test annotations as text,
Waymo Open's parquet components as bytes). Videos include an anamorphic one
(a sample aspect ratio) and a mirrored one (a display matrix). Each mutated file goes through
the reader that owns its format; every case must end accepted or rejected with that reader's
error and a non-empty reason on one line. Anything else (another exception, a case that runs
past its time limit) is recorded as a failure. Finally one curate run over mutated videos and
sidecars must finish with every source either curated or rejected with a reason.

    python -m tests.data.fuzz SEED CASES_PER_FORMAT OUT_DIR ADDRESS_SPACE_BYTES
        -> prints one JSON summary line (the process first limits its own address space)
"""

from __future__ import annotations

import json
import pickle
import resource
import signal
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np

from fourds.config import CurateConfig
from fourds.data.curate import curate
from fourds.data.decode import decode_video
from fourds.data.readers import ReaderError
from fourds.data.readers.boxes import read_box_tracks
from fourds.data.readers.perception_test import read_point_tracks
from fourds.data.readers.realestate10k import read_camera_file
from fourds.data.readers.tapvid import read_tapvid
from fourds.data.readers.waymo import read_segment
from fourds.data.sidecar import load_sidecar
from fourds.data.video import VideoError
from tests.benchmark_files import jpeg, point_tracking_entry, write_waymo_segment
from tests.data.real_videos import blocks, orient_mp4, write

FRAMES, SIZE = 8, 32
MIRROR = ((-1, 0), (0, 1))  # a display matrix that mirrors left to right
CASE_SECONDS = 10  # a case running longer than this is a hang
MAX_PIXELS = 4096 * 4096  # decode limit for the fuzzed files


def fixtures(root: Path) -> dict[str, Path]:
    """One valid file of every format, by a name saying what it is."""
    root.mkdir(parents=True, exist_ok=True)
    files = {
        f"video{suffix}": write(root / f"clip{suffix}", blocks(FRAMES, SIZE, SIZE, seed=1))
        for suffix in (".mp4", ".webm", ".avi", ".gif")
    }
    files["video-anamorphic.mp4"] = write(
        root / "anamorphic.mp4", blocks(FRAMES, SIZE, SIZE, seed=3), aspect=Fraction(4, 3)
    )
    files["video-mirrored.mp4"] = orient_mp4(files["video.mp4"], root / "mirrored.mp4", MIRROR)
    rng = np.random.default_rng(0)
    truth = {
        "depth": rng.uniform(1, 5, (FRAMES, SIZE, SIZE)).astype(np.float16),
        "instances": rng.integers(0, 4, (FRAMES, SIZE, SIZE), dtype=np.uint8),
        "intrinsics": np.tile(np.eye(3, dtype=np.float32), (FRAMES, 1, 1)),
        "extrinsics": np.tile(np.eye(4, dtype=np.float32), (FRAMES, 1, 1)),
        "tracks": rng.uniform(0, SIZE, (5, FRAMES, 2)).astype(np.float32),
        "visible": rng.random((5, FRAMES)) < 0.8,
        "track_instance": np.arange(5, dtype=np.uint8),
        "boxes": np.tile(np.array([2, 2, 20, 20], np.float32), (2, FRAMES, 1)),
        "box_visible": np.ones((2, FRAMES), bool),
        "label": np.array("pan"),
    }
    np.savez(root / "sidecar.npz", **truth)
    files["sidecar"] = root / "sidecar.npz"
    record = {
        "video": blocks(FRAMES, SIZE, SIZE, seed=2),
        "points": rng.random((3, FRAMES, 2)).astype(np.float32),
        "occluded": rng.random((3, FRAMES)) < 0.3,
    }
    (root / "tapvid.pkl").write_bytes(pickle.dumps({"clip": record}, protocol=4))
    files["pickle"] = root / "tapvid.pkl"
    record = {**record, "video": [jpeg(image) for image in record["video"]]}  # as Kinetics
    (root / "tapvid_jpeg.pkl").write_bytes(pickle.dumps([record], protocol=4))
    files["pickle-jpeg"] = files["pickle-entries"] = root / "tapvid_jpeg.pkl"
    lines = ["https://www.youtube.com/watch?v=abc"]
    for frame in range(FRAMES):
        pose = " ".join(f"{v:g}" for v in np.eye(4)[:3].reshape(-1))
        lines.append(f"{frame * 33366} 0.5 0.9 0.5 0.5 0 0 {pose}")
    (root / "camera.txt").write_text("\n".join(lines) + "\n")
    files["camera"] = root / "camera.txt"
    boxes = [[1, 2, 10, 20] if t % 3 else None for t in range(FRAMES)]
    (root / "boxes.json").write_text(
        json.dumps({"frames": FRAMES, "objects": [{"id": "a", "boxes": boxes}]})
    )
    files["boxes.json"] = root / "boxes.json"
    rows = "".join(f"a,{t},1,2,10,20\n" for t in range(FRAMES) if t % 2)
    (root / "boxes.csv").write_text("object,frame,x0,y0,x1,y1\n" + rows)
    files["boxes.csv"] = root / "boxes.csv"
    entry = point_tracking_entry("video_0001", "valid", truth["tracks"] / SIZE, truth["visible"])
    (root / "all_valid.json").write_text(json.dumps({"video_0001": entry}, indent=1))
    files["perception_test.json"] = root / "all_valid.json"
    files["waymo-camera_image"], files["waymo-camera_box"] = write_waymo_segment(
        root / "waymo", "segment", blocks(FRAMES, SIZE, SIZE, seed=4), truth["boxes"],
        truth["box_visible"],
    )  # fmt: skip
    return files


def mutate_bytes(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One random byte-level mutation of `data` and its description."""
    data = bytearray(data)
    kind = rng.choice(["flip", "noise", "zero", "duplicate", "remove", "cut", "header"])
    start = int(rng.integers(0, len(data)))
    span = int(rng.integers(1, 65))
    if kind == "flip":
        for index in rng.integers(0, len(data), 8):
            data[index] ^= 1 << int(rng.integers(0, 8))
    elif kind == "noise":
        data[start : start + span] = rng.integers(0, 256, span, dtype=np.uint8).tobytes()
    elif kind == "zero":
        data[start : start + span] = bytes(len(data[start : start + span]))
    elif kind == "duplicate":
        data[start:start] = data[start : start + span]
    elif kind == "remove":
        del data[start : start + span]
    elif kind == "cut":
        del data[start:]
    else:  # the first bytes, where sizes and counts live
        start = int(rng.integers(0, min(64, len(data))))
        data[start : start + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
    return bytes(data), f"{kind}@{start}+{span}"


TOKENS = ["nan", "inf", "-inf", "-1", "1e300", "0", "x", "", "null", "[]", "-0.5", "99999999999"]


def mutate_text(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """A token-level mutation of a text file (half the time), else a byte-level one."""
    if rng.random() < 0.5:
        return mutate_bytes(data, rng)
    text = data.decode("latin1")
    lines = text.splitlines()
    kind = rng.choice(["token", "drop_line", "repeat_line"])
    line = int(rng.integers(0, len(lines)))
    if kind == "drop_line":
        del lines[line]
    elif kind == "repeat_line":
        lines.insert(line, lines[line])
    else:
        separators = " ,:[]{}"
        pieces, current = [], ""
        for char in lines[line]:
            if char in separators:
                pieces += [current, char]
                current = ""
            else:
                current += char
        pieces.append(current)
        words = [i for i, piece in enumerate(pieces) if piece and piece not in separators]
        if words:
            pieces[words[int(rng.integers(0, len(words)))]] = str(rng.choice(TOKENS))
        lines[line] = "".join(pieces)
    return ("\n".join(lines) + "\n").encode("latin1"), f"{kind}@line{line}"


WRONG_VALUES = [  # what a malformed TAP-Vid pickle holds where an array or JPEG bytes belong
    None, 7, 1 << 40, -1.5, "text", b"\xff\xd8 not a JPEG", [], {}, [1 << 40] * FRAMES,
    ["frame"] * FRAMES, [[0.5], [0.5, 0.5]], np.zeros(0, np.uint8),
    np.zeros((FRAMES, SIZE, SIZE, 4), np.uint8), np.zeros((FRAMES, SIZE, SIZE, 3), np.float32),
    np.zeros((3, FRAMES), object),
]  # fmt: skip


def mutate_record(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """A TAP-Vid pickle (a list of records) with its record, one of its entries, or one of its
    frames replaced by a value of the wrong type or shape; and the description."""
    records = pickle.loads(data)  # a fixture this module wrote
    value = WRONG_VALUES[int(rng.integers(len(WRONG_VALUES)))]
    target = str(rng.choice(["record", "video", "points", "occluded", "frame"]))
    if target == "record":
        records[0] = value
    elif target == "frame":
        frames = list(records[0]["video"])
        frames[int(rng.integers(len(frames)))] = value
        records[0]["video"] = frames
    else:
        records[0][target] = value
    return pickle.dumps(records, protocol=4), f"{target} = {value!r:.60}"


MUTATIONS = {  # format -> how its fixture is mutated (mutate_bytes where not named)
    "camera": mutate_text,
    "boxes.json": mutate_text,
    "boxes.csv": mutate_text,
    "pickle-entries": mutate_record,
    "perception_test.json": mutate_text,
}


def readers(files: dict[str, Path]) -> dict[str, tuple[Callable[[Path], object], tuple[type, ...]]]:
    """Format -> (its reader, the errors that mean "rejected with a reason"); a Waymo Open
    component is read with the other component of its segment from the valid `files`."""
    video = (lambda path: decode_video(path, 16, max_frame_pixels=MAX_PIXELS), (VideoError,))
    tapvid = (lambda path: read_tapvid(path, SIZE), (ReaderError,))
    return {
        **{f"video{s}": video for s in (".mp4", ".webm", ".avi", ".gif")},
        "video-anamorphic.mp4": video,
        "video-mirrored.mp4": video,
        "sidecar": (lambda path: load_sidecar(path, FRAMES, MAX_PIXELS), (VideoError,)),
        "pickle": tapvid,
        "pickle-jpeg": tapvid,
        "pickle-entries": tapvid,
        "camera": (lambda path: read_camera_file(path, 64, 64), (ValueError,)),
        "boxes.json": (lambda path: read_box_tracks(path, frames=FRAMES), (ValueError,)),
        "boxes.csv": (lambda path: read_box_tracks(path, frames=FRAMES), (ValueError,)),
        "perception_test.json": (read_point_tracks, (ReaderError,)),
        "waymo-camera_image": (
            lambda path: read_segment(path, files["waymo-camera_box"], SIZE),
            (ReaderError,),
        ),
        "waymo-camera_box": (
            lambda path: read_segment(files["waymo-camera_image"], path, SIZE),
            (ReaderError,),
        ),
    }


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"ran past {CASE_SECONDS} s")


def run_case(reader, rejections, path: Path) -> tuple[str, str]:
    """("accepted" | "rejected" | "failed", detail) of one file."""
    signal.alarm(CASE_SECONDS)
    try:
        reader(path)
    except rejections as error:
        reason = str(error)
        if not reason.strip() or "\n" in reason:
            return "failed", f"a reason that is empty or not one line: {reason!r}"
        return "rejected", reason
    except Exception as error:  # the point of fuzzing: anything else is a failure to report
        return "failed", f"{type(error).__name__}: {error}"
    finally:
        signal.alarm(0)
    return "accepted", ""


def peak_rss_mib() -> float:
    """This process's peak resident memory since it started its program, in MiB: the VmHWM of
    its own address space (getrusage's ru_maxrss keeps the peak of the process that forked it,
    here pytest's, across exec)."""
    status = Path("/proc/self/status").read_text()
    (line,) = [line for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(line.split()[1]) / 1024


def fuzz(seed: int, cases: int, root: Path) -> dict:
    """Mutate every fixture `cases` times; returns counts, failures and peak memory."""
    signal.signal(signal.SIGALRM, _alarm)
    rng = np.random.default_rng(seed)
    files = fixtures(root / "valid")
    counts: dict[str, dict[str, int]] = {}
    failures = []
    started = time.perf_counter()
    for name, (reader, rejections) in readers(files).items():
        source = files[name]
        outcome, detail = run_case(reader, rejections, source)
        if outcome != "accepted":
            failures.append(
                {"format": name, "mutation": "none (the valid fixture)", "detail": detail}
            )
        mutate = MUTATIONS.get(name, mutate_bytes)
        tally = counts.setdefault(name, {"accepted": 0, "rejected": 0, "failed": 0})
        for case in range(cases):
            data, mutation = mutate(source.read_bytes(), rng)
            path = root / "cases" / f"{name.replace('.', '_')}-{case}{source.suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            outcome, detail = run_case(reader, rejections, path)
            tally[outcome] += 1
            if outcome == "failed":
                failures.append({"format": name, "mutation": mutation, "detail": detail[:300]})
    failures += fuzz_curate(files, rng, root / "curate")
    return {
        "counts": counts,
        "failures": failures,
        "seconds": time.perf_counter() - started,
        "peak_rss_mib": peak_rss_mib(),
    }


def fuzz_curate(files: dict[str, Path], rng: np.random.Generator, root: Path) -> list[dict]:
    """One curate run over mutated videos, some with mutated sidecars: it must finish, and
    every source must be curated or rejected with a reason."""
    split = root / "data" / "pretrain"
    split.mkdir(parents=True)
    sources = []
    for index in range(8):
        name = ["video.mp4", "video.avi", "video.gif", "video.webm"][index % 4]
        data = files[name].read_bytes()
        if index >= 2:
            data, _ = mutate_bytes(data, rng)
        path = split / f"v{index}{files[name].suffix}"
        path.write_bytes(data)
        sidecar = files["sidecar"].read_bytes()
        if index % 3 == 0:
            sidecar, _ = mutate_bytes(sidecar, rng)
        path.with_suffix(".npz").write_bytes(sidecar)
        sources.append(path)
    signal.alarm(CASE_SECONDS * 4)
    try:
        manifest = curate(root / "data", root / "out", CurateConfig(4, 2, 4, 16, 4, 0.0, "center"))
    except Exception as error:
        return [
            {
                "format": "curate",
                "mutation": "8 sources",
                "detail": f"{type(error).__name__}: {error}",
            }
        ]
    finally:
        signal.alarm(0)
    seen = {clip["source"] for clip in manifest["clips"]}
    seen |= {entry["source"] for entry in manifest["rejected"] if entry["reason"].strip()}
    missing = [str(path) for path in sources if str(path) not in seen]
    return [
        {"format": "curate", "mutation": "8 sources", "detail": f"unaccounted {missing}"}
    ] * bool(missing)


if __name__ == "__main__":
    seed, cases, out, address_space = sys.argv[1:]
    resource.setrlimit(resource.RLIMIT_AS, (int(address_space), int(address_space)))
    seed, cases, out = int(seed), int(cases), Path(out)
    print(json.dumps(fuzz(seed, cases, out)))
