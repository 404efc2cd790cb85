"""Write rendered world videos in the public benchmark formats, for reader and readout tests.

`export_benchmark(corpus, split, format, out)` takes every video of a corpus split (mp4 plus
its ground-truth npz, see fourds.data.corpus) and writes it the way the public benchmark
stores it, so that what a reader gives back can be checked against the truth it came from.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import av
import numpy as np

from fourds.data.curate import list_sources
from fourds.data.video import read_video


def jpeg(image: np.ndarray) -> bytes:
    """One RGB image as JPEG bytes (PyAV's MJPEG encoder)."""
    codec = av.CodecContext.create("mjpeg", "w")
    codec.height, codec.width = image.shape[:2]
    codec.pix_fmt, codec.time_base = "yuvj444p", 1
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuvj444p")
    return b"".join(bytes(packet) for packet in [*codec.encode(frame), *codec.encode(None)])


def write_png16(path: Path, millimetres: np.ndarray) -> None:
    """A 16-bit greyscale PNG, as ScanNet stores depth."""
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("png", rate=1)
        stream.height, stream.width = millimetres.shape
        stream.pix_fmt = "gray16be"
        frame = av.VideoFrame.from_ndarray(millimetres.astype(np.uint16), format="gray16le")
        container.mux(stream.encode(frame))
        container.mux(stream.encode())


def camera_line(timestamp: int, intrinsics: np.ndarray, extrinsics: np.ndarray) -> str:
    """One RealEstate10K camera line: timestamp (us), normalised fx fy cx cy, 0 0, [R | t]."""
    numbers = [timestamp, *intrinsics, 0, 0, *np.asarray(extrinsics)[:3].reshape(-1)]
    return " ".join(f"{value:.9g}" for value in numbers)


def _videos(corpus: Path, split: str) -> list[tuple[Path, dict[str, np.ndarray]]]:
    pairs = []
    for video in list_sources(corpus / split):
        with np.load(video.with_suffix(".npz")) as truth:
            pairs.append((video, {key: truth[key] for key in truth.files}))
    return pairs


def export_benchmark(corpus: Path, split: str, format: str, out: Path) -> Path:
    """Write `split` of `corpus` as `format` under `out`; returns the path a source param names
    (a pickle file for tapvid, a folder for the others)."""
    fps = json.loads((corpus / "world.json").read_text())["fps"]
    folder = out / f"{format}-{split}"
    folder.mkdir(parents=True, exist_ok=True)
    if format == "tapvid":
        records = {}
        for video, truth in _videos(corpus, split):
            frames = read_video(video)
            height, width = frames.shape[1:3]
            records[video.stem] = {
                "video": frames,
                "points": truth["tracks"] / np.array([width, height], np.float32),
                "occluded": ~truth["visible"],
            }
        path = folder / "tapvid.pkl"
        path.write_bytes(pickle.dumps(records))
        return path
    writers = {"scannet": _scannet_scene, "realestate10k": _camera_file, "box_tracks": _box_file}
    if format not in writers:
        raise ValueError(f"no exporter for {format!r}")
    for video, truth in _videos(corpus, split):
        writers[format](folder, video, truth, fps)
    return folder


def _camera_file(folder: Path, video: Path, truth: dict[str, np.ndarray], fps: float) -> None:
    """The video and its RealEstate10K camera file (one line per frame)."""
    shutil.copy(video, folder / video.name)
    height, width = read_video(video).shape[1:3]
    lines = [f"https://example.invalid/{video.stem}"]
    for index, (k, extrinsics) in enumerate(
        zip(truth["intrinsics"], truth["extrinsics"], strict=True)
    ):
        normalised = [k[0, 0] / width, k[1, 1] / height, k[0, 2] / width, k[1, 2] / height]
        lines.append(camera_line(round(index / fps * 1e6), normalised, extrinsics))
    (folder / f"{video.stem}.txt").write_text("\n".join(lines) + "\n")


def _box_file(folder: Path, video: Path, truth: dict[str, np.ndarray], fps: float) -> None:
    """The video and its box tracks as JSON (null where an object is not visible)."""
    shutil.copy(video, folder / video.name)
    objects = [
        {
            "id": f"object-{row}",
            "boxes": [
                box.tolist() if seen else None for box, seen in zip(boxes, seen_in, strict=True)
            ],
        }
        for row, (boxes, seen_in) in enumerate(
            zip(truth["boxes"], truth["box_visible"], strict=True)
        )
    ]
    frames = len(truth["extrinsics"])
    (folder / f"{video.stem}.json").write_text(json.dumps({"frames": frames, "objects": objects}))


def _scannet_scene(folder: Path, video: Path, truth: dict[str, np.ndarray], fps: float) -> None:
    """The video as a scene in ScanNet's exported layout: colour JPEGs, depth PNGs (mm),
    camera-to-world poses and the depth intrinsics."""
    scene, frames = folder / video.stem, read_video(video)
    for name in ("color", "depth", "pose", "intrinsic"):
        (scene / name).mkdir(parents=True, exist_ok=True)
    millimetres = np.round(truth["depth"].astype(np.float64) * 1000.0)
    for index, frame in enumerate(frames):
        (scene / "color" / f"{index}.jpg").write_bytes(jpeg(frame))
        write_png16(scene / "depth" / f"{index}.png", millimetres[index])
        np.savetxt(scene / "pose" / f"{index}.txt", np.linalg.inv(truth["extrinsics"][index]))
    intrinsics = np.eye(4)
    intrinsics[:3, :3] = truth["intrinsics"][0]
    np.savetxt(scene / "intrinsic" / "intrinsic_depth.txt", intrinsics)
