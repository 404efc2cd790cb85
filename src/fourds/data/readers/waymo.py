"""Waymo Open Dataset (perception, v2 parquet release) camera boxes -> per-object box tracks over
each segment: `Sample`s with `boxes` and `box_visible`.

Where they come from: waymo.com/open (download after accepting the Waymo Dataset License
Agreement for Non-Commercial Use, waymo.com/open/terms), bucket waymo_open_dataset_v_2_0_*. The
v2 release stores each component of a split as one parquet file per segment (20 s at 10 Hz),
named after the segment; fourds reads two components of a split folder such as `training/` or
`validation/`:

    camera_image/<segment>.parquet   a row per (frame, camera)
    camera_box/<segment>.parquet     a row per (frame, camera, labelled object)

Column names and types, from the v2 component definitions (src/waymo_open_dataset/v2/
perception/{base,camera_image,box}.py and column_types.py of waymo-research/waymo-open-dataset:
key fields flattened as `key.<field>`, component fields as `[<Component>].<path>`):

    key.frame_timestamp_micros                 int64    the frame's time
    key.camera_name                            int8     1 FRONT, 2 FRONT_LEFT, 3 FRONT_RIGHT,
                                                        4 SIDE_LEFT, 5 SIDE_RIGHT
    [CameraImageComponent].image               binary   the frame, JPEG
    key.camera_object_id                       string   the object (the same id across frames)
    [CameraBoxComponent].box.center.{x,y}      float64  box centre, pixels of the image
    [CameraBoxComponent].box.size.{x,y}        float64  box width and height, pixels

Protocol: every segment is one video of one camera's frames in timestamp order, each labelled
object one track; the box becomes (x0, y0, x1, y1) = centre -+ size / 2, scaled with the image
to size x size. fourds' choices, where the paper and the dataset leave them open: the FRONT
camera (CAMERA); every object type (vehicles, pedestrians, cyclists, signs); boxes as labelled,
not clipped to the image. The readout cuts the segment into clips of the encoder's frames
(`source.frame_stride` apart) and queries each object visible in a clip's first frame with that
box (fourds.evaluate.tasks.boxes: mean IoU over its later visible frames, the metric the 4DS
paper plots for Waymo Open).

Memory and hostile input: a file is opened with bounded thrift metadata and without arrow
extension types (no pickled types are ever loaded), its columns must be the names and types
above, the uncompressed size its metadata declares for the columns read must fit in
`fourds.data.readers.max_decoded_bytes` of its size (checked before any is read), rows are read
in batches of BATCH_ROWS keeping only the camera's, each JPEG may declare at most
MAX_IMAGE_PIXELS pixels (fourds.data.readers.jpeg), and the segment's frames and box arrays are
checked against the same room before they are allocated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fourds.data.readers import ReaderError, check_room, max_decoded_bytes
from fourds.data.readers.jpeg import decode_jpeg
from fourds.data.sample import Sample
from fourds.data.video import resize_frames

PROVENANCE = (
    "Waymo Open Dataset v2 from waymo.com/open, under the Waymo Dataset License Agreement for "
    "Non-Commercial Use (waymo.com/open/terms)"
)
CAMERA_IMAGE, CAMERA_BOX = "camera_image", "camera_box"
CAMERA = 1  # FRONT
TIMESTAMP, CAMERA_NAME = "key.frame_timestamp_micros", "key.camera_name"
OBJECT = "key.camera_object_id"
IMAGE = "[CameraImageComponent].image"
BOX = "[CameraBoxComponent].box"
BOX_FIELDS = (f"{BOX}.center.x", f"{BOX}.center.y", f"{BOX}.size.x", f"{BOX}.size.y")
BATCH_ROWS = 32  # rows read at a time (five cameras' JPEGs: a few MB)
THRIFT_STRING_LIMIT = 100 << 20  # bytes of one thrift string in the file's metadata
THRIFT_CONTAINER_LIMIT = 1 << 20  # items of one thrift list or map there

_Kind = Callable[[pa.DataType], bool]
IMAGE_COLUMNS: dict[str, _Kind] = {
    TIMESTAMP: pa.types.is_integer,
    CAMERA_NAME: pa.types.is_integer,
    IMAGE: lambda kind: pa.types.is_binary(kind) or pa.types.is_large_binary(kind),
}
BOX_COLUMNS: dict[str, _Kind] = {
    TIMESTAMP: pa.types.is_integer,
    CAMERA_NAME: pa.types.is_integer,
    OBJECT: lambda kind: pa.types.is_string(kind) or pa.types.is_large_string(kind),
    **dict.fromkeys(BOX_FIELDS, pa.types.is_floating),
}


def malformed(message: str) -> ReaderError:
    """A ReaderError for a file that is not what the release ships: `message` (one line, naming
    the file), then where the data comes from and its terms."""
    return ReaderError(f"{message} ({PROVENANCE})")


def waymo_segments(split: str | Path) -> list[tuple[Path, Path]]:
    """(camera_image, camera_box) parquet files of every segment of a split folder, in name
    order.

    Raises:
        FileNotFoundError: the folder has no camera_image/*.parquet, or a segment has no
            camera_box file (naming where the dataset comes from).
    """
    split = Path(split)
    images = sorted((split / CAMERA_IMAGE).glob("*.parquet"))
    if not images:
        raise FileNotFoundError(
            f"{split}: no {CAMERA_IMAGE}/<segment>.parquet (the split folder of the v2 release, "
            f"with its {CAMERA_IMAGE} and {CAMERA_BOX} components; {PROVENANCE})"
        )
    pairs = []
    for image in images:
        box = split / CAMERA_BOX / image.name
        if not box.is_file():
            raise FileNotFoundError(
                f"{box}: no {CAMERA_BOX} file for segment {image.stem} ({PROVENANCE})"
            )
        pairs.append((image, box))
    return pairs


def samples(split: Path, size: int, videos: str = "") -> Iterator[Sample]:
    """Every segment of a split folder as a Sample at size x size, read one segment at a time
    as the iterator reaches it; the folder is listed at once."""
    return (read_segment(image, box, size) for image, box in waymo_segments(split))


def files(split: Path, videos: str = "") -> list[Path]:
    """The files a split reads: every segment's camera_image and camera_box files."""
    return [path for pair in waymo_segments(split) for path in pair]


def read_segment(image_file: Path, box_file: Path, size: int, camera: int = CAMERA) -> Sample:
    """One segment's `camera` frames and their box tracks: video uint8 [T, size, size, 3] in
    timestamp order, boxes float32 [M, T, 4] (x0, y0, x1, y1) pixels of the resized frames (NaN
    where the object is not labelled), box_visible bool [M, T]; objects in order of first
    appearance in the box file.

    Raises:
        ReaderError: a file is not parquet, lacks a column or has another type, declares more
            than its room, has no frame of the camera, two frames at one timestamp, a box at a
            timestamp without a frame, two boxes of an object in one frame, or frames of
            different sizes (one line naming the file).
    """
    room = max_decoded_bytes(image_file.stat().st_size + box_file.stat().st_size)
    images = _rows(image_file, IMAGE_COLUMNS, camera, room)
    room -= sum(len(data) for data in images[IMAGE])
    order = np.argsort(images[TIMESTAMP], kind="stable")
    times = images[TIMESTAMP][order]
    if not len(times):
        raise malformed(f"{image_file}: no frame of camera {camera}")
    if (np.diff(times) == 0).any():
        raise malformed(f"{image_file}: two frames of camera {camera} at one timestamp")
    check_room(str(image_file), f"{len(times)} frames at {size}x{size}",
               len(times) * size * size * 3, room)  # fmt: skip
    jpegs = [images[IMAGE][index] for index in order]
    del images
    video, (width, height) = _frames(image_file, jpegs, size)
    room -= video.nbytes
    boxes, visible = _tracks(box_file, times, camera, room)
    scale = np.array([size / width, size / height] * 2, np.float32)
    return Sample(
        name=f"{image_file.stem}:camera{camera}",
        video=video,
        boxes=boxes * scale,
        box_visible=visible,
    )


def _frames(where: Path, jpegs: list[bytes], size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """JPEG frames -> (uint8 [T, size, size, 3], the source (width, height)), decoded and
    resized one at a time."""
    sizes: set[tuple[int, int]] = set()

    def decoded():
        for index, data in enumerate(jpegs):
            try:
                frame = decode_jpeg(str(where), index, data)
            except ReaderError as error:
                raise malformed(str(error)) from None
            sizes.add((frame.width, frame.height))
            if len(sizes) > 1:
                raise malformed(f"{where}: the camera's frames differ in size {sorted(sizes)}")
            yield frame

    video = resize_frames(decoded(), len(jpegs), size)
    return video, sizes.pop()


def _tracks(path: Path, times: np.ndarray, camera: int, room: int) -> tuple[np.ndarray, np.ndarray]:
    """The box file's boxes of `camera` at the frames `times` (int64 [T], sorted): (boxes
    float32 [M, T, 4] source pixels, NaN where unlabelled; visible bool [M, T])."""
    rows = _rows(path, BOX_COLUMNS, camera, room)
    frame = np.searchsorted(times, rows[TIMESTAMP])
    inside = frame < len(times)
    if not (inside & (times[np.minimum(frame, len(times) - 1)] == rows[TIMESTAMP])).all():
        raise malformed(f"{path}: a box of camera {camera} is at a timestamp with no frame")
    ids, track = np.unique(rows[OBJECT], return_inverse=True)
    first = np.full(len(ids), len(track))
    np.minimum.at(first, track, np.arange(len(track)))
    rank = np.argsort(np.argsort(first))  # objects in order of first appearance
    row = rank[track]
    check_room(
        str(path),
        f"{len(ids)} objects' boxes over {len(times)} frames",
        len(ids) * len(times) * (4 * 4 + 1),  # a float32 box and a bool per object and frame
        room,
    )
    if len(set(zip(row.tolist(), frame.tolist(), strict=True))) != len(row):
        raise malformed(f"{path}: an object of camera {camera} has two boxes in one frame")
    centre_x, centre_y, width, height = (rows[name] for name in BOX_FIELDS)
    with np.errstate(over="ignore"):  # past float32's range: infinite, refused below
        x0, y0 = centre_x - width / 2, centre_y - height / 2
        x1, y1 = centre_x + width / 2, centre_y + height / 2
        corners = np.stack([x0, y0, x1, y1], axis=-1).astype(np.float32)
    if not np.isfinite(corners).all() or (width < 0).any() or (height < 0).any():
        raise malformed(f"{path}: a box is not finite with a size of at least 0")
    boxes = np.full((len(ids), len(times), 4), np.nan, np.float32)
    boxes[row, frame] = corners
    return boxes, ~np.isnan(boxes[..., 0])


def _rows(path: Path, columns: dict[str, _Kind], camera: int, room: int) -> dict[str, np.ndarray]:
    """`columns` of the rows of `camera`, each as a numpy array (binary columns as object
    arrays of bytes), read BATCH_ROWS at a time.

    Raises:
        ReaderError: as read_segment.
    """
    kept: dict[str, list] = {name: [] for name in columns}
    with _parquet_errors(path):
        file = _open(path, columns, room)
        for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=list(columns)):
            if any(batch.column(name).null_count for name in columns):
                raise malformed(f"{path}: a value of {list(columns)} is null")
            chosen = batch.filter(pc.equal(batch.column(CAMERA_NAME), camera))
            for name in columns:
                values = chosen.column(name)
                binary = pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type)
                kept[name].extend(
                    values.to_pylist() if binary else [values.to_numpy(zero_copy_only=False)]
                )
    return {
        name: (np.array(values, dtype=object) if name == IMAGE else _joined(values))
        for name, values in kept.items()
    }


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0)


def _open(path: Path, columns: dict[str, _Kind], room: int) -> pq.ParquetFile:
    """The parquet file, its schema checked to have `columns` of their kinds and the
    uncompressed bytes its metadata declares for them checked to fit in `room` (arrow's own
    errors are left to _parquet_errors)."""
    file = pq.ParquetFile(
        path,
        thrift_string_size_limit=THRIFT_STRING_LIMIT,
        thrift_container_size_limit=THRIFT_CONTAINER_LIMIT,
        arrow_extensions_enabled=False,
        page_checksum_verification=True,
    )
    schema = file.schema_arrow
    for name, kind in columns.items():
        index = schema.get_field_index(name)
        if index < 0:
            raise malformed(f"{path}: no column {name} (a v2 {path.parent.name} file?)")
        if not kind(schema.field(index).type):
            raise malformed(f"{path}: column {name} is {schema.field(index).type}")
    declared = sum(
        group.column(leaf).total_uncompressed_size
        for group in (file.metadata.row_group(i) for i in range(file.metadata.num_row_groups))
        for leaf in range(group.num_columns)
        if group.column(leaf).path_in_schema in columns
    )
    check_room(str(path), f"columns {list(columns)}", declared, room)
    return file


@contextlib.contextmanager
def _parquet_errors(path: Path) -> Iterator[None]:
    """Arrow's errors on a damaged file (and the decoding errors of its strings) as one
    ReaderError line naming the file; fourds' own ReaderErrors pass unchanged."""
    try:
        yield
    except ReaderError:
        raise
    except (pa.ArrowException, OSError, ValueError) as error:
        reason = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
        raise malformed(f"{path}: not a readable parquet file ({reason})") from None
