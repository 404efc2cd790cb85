"""Write rendered world videos in the public benchmark formats, for reader and readout tests.

`export_benchmark(corpus, split, format, out)` takes every video of a corpus split (mp4 plus
its ground-truth npz, see fourds.data.corpus) and writes it the way the public benchmark
stores it, so that what a reader gives back can be checked against the truth it came from.
`write_ssv2` and `write_kinetics` write small classification benchmarks in their published
layouts, each class's videos one flat colour (`class_colour`); `write_perception_test` and
`write_waymo` write the corpus' readout videos as Perception Test's point tracks and Waymo Open's
v2 camera components.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fourds.data.curate import list_split
from fourds.data.video import read_video, write_video

SSV2_TEMPLATES = (
    "Putting [something] on [something]",
    "Pushing [something] from left to right",
    "Holding [something]",
    "Tearing [something] into two pieces",
    "Dropping [something] into [something]",
    "Showing [something] to the camera",
)
KINETICS_LABELS = (
    "abseiling",
    "air drumming",
    "answering questions",
    "applauding",
    "applying cream",
    "archery",
)


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
    for video in list_split(corpus / split).sources:
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


def class_colour(index: int) -> np.ndarray:
    """The flat RGB colour of class `index`'s videos: uint8 [3], far apart for six classes."""
    return np.array(
        [(index * 97) % 256, (index * 53 + 80) % 256, (index * 151 + 40) % 256], np.uint8
    )


def class_video(index: int, frames: int = 10, height: int = 24, width: int = 32) -> np.ndarray:
    """uint8 [frames, height, width, 3]: class `index`'s colour, a bar moving left to right."""
    video = np.broadcast_to(class_colour(index), (frames, height, width, 3)).copy()
    for frame in range(frames):
        video[frame, :, 3 * frame : 3 * frame + 3] = 255
    return video


def write_webm(path: Path, frames: np.ndarray, fps: int = 12) -> None:
    """VP9 in WebM, as Something-Something v2 ships its videos."""
    with av.open(str(path), mode="w", format="webm") as container:
        stream = container.add_stream("libvpx-vp9", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())


def write_ssv2(root: Path, splits: dict[str, list[int]], skip: tuple[str, ...] = ()) -> None:
    """Something-Something v2 as published, under `root`: labels/labels.json (the classes of
    SSV2_TEMPLATES without brackets, indices as strings, written in reverse order),
    labels/<split>.json with one entry per class index of `splits[split]` (ids "1000" on, in
    order across splits), and 20bn-something-something-v2/<id>.webm for every id not in `skip`."""
    labels, videos = root / "labels", root / "20bn-something-something-v2"
    labels.mkdir(parents=True)
    videos.mkdir()
    classes = {t.replace("[", "").replace("]", ""): str(i) for i, t in enumerate(SSV2_TEMPLATES)}
    (labels / "labels.json").write_text(json.dumps(dict(reversed(classes.items()))))
    number = 1000
    for split, indices in splits.items():
        entries = []
        for index in indices:
            template = SSV2_TEMPLATES[index]
            things = ["a cup", "a table"][: template.count("[")]
            label = template
            for thing in things:
                label = label.replace("[something]", thing, 1)
            entry = {"id": str(number), "label": label, "template": template}
            entries.append({**entry, "placeholders": things})
            if str(number) not in skip:
                write_webm(videos / f"{number}.webm", class_video(index))
            number += 1
        (labels / f"{split}.json").write_text(json.dumps(entries))


def write_kinetics(root: Path, splits: dict[str, list[int]], skip: tuple[str, ...] = ()) -> None:
    """Kinetics as published, under `root`: annotations/<split>.csv with a row per class
    index of `splits[split]` (of KINETICS_LABELS; YouTube ids "vid<k>", k counting across
    splits, seconds [k, k + 10]), and the videos <youtube_id>_<start:06d>_<end:06d>.mp4 in
    per-class folders <split>/<label>/ for the "train" split, flat in <split>/ for the others;
    youtube ids in `skip` have no video."""
    (root / "annotations").mkdir(parents=True)
    number = 0
    for split, indices in splits.items():
        lines = ["label,youtube_id,time_start,time_end,split"]
        for index in indices:
            label, video = KINETICS_LABELS[index], f"vid{number}"
            lines.append(f"{label},{video},{number},{number + 10},{split}")
            folder = root / split / label if split == "train" else root / split
            folder.mkdir(parents=True, exist_ok=True)
            if video not in skip:
                name = f"{video}_{number:06d}_{number + 10:06d}.mp4"
                write_video(folder / name, class_video(index), fps=12)
            number += 1
        (root / "annotations" / f"{split}.csv").write_text("\n".join(lines) + "\n")


def write_perception_test(corpus: Path, out: Path) -> Path:
    """Perception Test as released, under `out`: all_train.json and all_valid.json (the
    corpus' readout-train and readout-test videos) and videos/<video_id>.mp4. Each file also
    holds an entry without point tracks (and so without a video), as the benchmark's files do."""
    (out / "videos").mkdir(parents=True, exist_ok=True)
    number = 0
    for split, name in (("readout-train", "train"), ("readout-test", "valid")):
        entries = {}
        for video, truth in _videos(corpus, split):
            video_id = f"video_{number:04d}"
            shutil.copy(video, out / "videos" / f"{video_id}.mp4")
            height, width = read_video(video).shape[1:3]
            entries[video_id] = point_tracking_entry(
                video_id, name, truth["tracks"] / [width, height], truth["visible"]
            )
            number += 1
        unannotated = {"video_id": "video_9999", "num_frames": 30, "split": name}
        entries["video_9999"] = {"metadata": unannotated, "point_tracking": []}
        (out / f"all_{name}.json").write_text(json.dumps(entries))
    return out


def point_tracking_entry(video_id: str, split: str, tracks, visible) -> dict:
    """A Perception Test annotation entry of a video with point tracks: from tracks [N, T, 2]
    (x, y) normalised by the frame's width and height and visible bool [N, T], a track per point
    visible somewhere: `frame_ids` the frames where it is visible, `points` two rows (y, x)."""
    point_tracking = [
        {"id": point, "label": "point", "parent_objects": 0,
         "frame_ids": np.flatnonzero(seen).tolist(),
         "points": [xy[seen, 1].tolist(), xy[seen, 0].tolist()]}
        for point, (xy, seen) in enumerate(zip(tracks, visible, strict=True)) if seen.any()
    ]  # fmt: skip
    metadata = {"video_id": video_id, "num_frames": visible.shape[1], "split": split,
                "frame_rate": 12, "is_camera_moving": False}  # fmt: skip
    return {"metadata": metadata, "point_tracking": point_tracking, "object_tracking": []}


WAYMO_FRONT, WAYMO_SIDE_LEFT = 1, 4


def write_waymo(corpus: Path, out: Path) -> Path:
    """The Waymo Open v2 release's camera_image and camera_box components, under
    `out`/training (the corpus' readout-train videos) and `out`/validation (readout-test), one
    segment per video (write_waymo_segment)."""
    number = 0
    for split, name in (("readout-train", "training"), ("readout-test", "validation")):
        for video, truth in _videos(corpus, split):
            segment = f"1002394760240072{number:04d}_1120_000_1140_000"  # a v2 segment name
            write_waymo_segment(
                out / name, segment, read_video(video), truth["boxes"], truth["box_visible"]
            )
            number += 1
    return out


def write_waymo_segment(split: Path, segment: str, frames, boxes, visible) -> tuple[Path, Path]:
    """One segment's camera_image and camera_box files under the split folder `split`, from
    frames uint8 [T, H, W, 3] and boxes [M, T, 4] (x0, y0, x1, y1 pixels) where visible [M, T]:
    a FRONT camera row per frame (its JPEG, timestamps 0.1 s apart) and a SIDE_LEFT one (the
    frame upside down, its boxes elsewhere: not read), image rows in reverse time order; a box
    row per labelled object and frame, objects in order, as centre and size in pixels; the v2
    column names and types. Returns the two files."""
    times = [1_500_000_000_000_000 + 100_000 * index for index in range(len(frames))]
    images = [(time, camera, jpeg(frame if camera == WAYMO_FRONT else frame[::-1]))
              for time, frame in zip(times, frames, strict=True)
              for camera in (WAYMO_FRONT, WAYMO_SIDE_LEFT)][::-1]  # fmt: skip
    labels = [(times[frame], camera, f"object-{row}", box)
              for camera in (WAYMO_FRONT, WAYMO_SIDE_LEFT)
              for row, (track, seen) in enumerate(zip(boxes, visible, strict=True))
              for frame, box in enumerate(track) if seen[frame]]  # fmt: skip
    image_file = split / "camera_image" / f"{segment}.parquet"
    _waymo_component(image_file, segment, {
        "key.frame_timestamp_micros": (pa.int64(), [row[0] for row in images]),
        "key.camera_name": (pa.int8(), [row[1] for row in images]),
        "[CameraImageComponent].image": (pa.binary(), [row[2] for row in images]),
        "[CameraImageComponent].pose_timestamp": (pa.float64(), [row[0] / 1e6 for row in images]),
    })  # fmt: skip
    corners = np.array([row[3] for row in labels], np.float64).reshape(-1, 4)
    centre, size = (corners[:, :2] + corners[:, 2:]) / 2, corners[:, 2:] - corners[:, :2]
    side = np.array([row[1] == WAYMO_SIDE_LEFT for row in labels], bool)
    centre[side] = centre[side][:, ::-1] + 3.0  # not the FRONT camera's boxes
    box_file = split / "camera_box" / f"{segment}.parquet"
    _waymo_component(box_file, segment, {
        "key.frame_timestamp_micros": (pa.int64(), [row[0] for row in labels]),
        "key.camera_name": (pa.int8(), [row[1] for row in labels]),
        "key.camera_object_id": (pa.string(), [row[2] for row in labels]),
        "[CameraBoxComponent].box.center.x": (pa.float64(), centre[:, 0]),
        "[CameraBoxComponent].box.center.y": (pa.float64(), centre[:, 1]),
        "[CameraBoxComponent].box.size.x": (pa.float64(), size[:, 0]),
        "[CameraBoxComponent].box.size.y": (pa.float64(), size[:, 1]),
        "[CameraBoxComponent].type": (pa.int8(), [1] * len(labels)),
    })  # fmt: skip
    return image_file, box_file


def _waymo_component(path: Path, segment: str, columns: dict[str, tuple]) -> None:
    """One v2 component file: key.segment_context_name first, then `columns` (name ->
    (arrow type, values))."""
    count = len(next(iter(columns.values()))[1])
    names = ["key.segment_context_name", *columns]
    arrays = [pa.array([segment] * count, pa.string())]
    arrays += [pa.array(values, kind) for kind, values in columns.values()]
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(arrays, names=names), path)
