"""Perception Test point tracking as the challenge scores it, beside fourds' per-clip protocol.

fourds' headline (fourds.evaluate.tasks.tracking) scores each clip on its own: a point is
queried at its first visible frame in the clip, the readout's occlusion predictions count, only
the frames after the query are scored, and the metrics are averaged over clips. The benchmark's
baseline notebook (github.com/google-deepmind/perception_test,
baselines/single_point_tracking.ipynb, its `evaluate` and `compute_tapvid_metrics`) scores whole
videos instead (`video_metrics`, `mean_over_videos`):

- each annotated track is queried once, at its first annotated frame (the first of its
  `frame_ids`), with its ground-truth point there;
- the ground truth is visible exactly at the track's `frame_ids` and occluded elsewhere;
- every predicted point is visible at every frame (a predicted occlusion is ignored);
- positions are the normalised points times 256;
- its "first" query mode is meant to drop the frames before each query, but it indexes the
  [1, tracks, frames] array by track and drops nothing: every frame but the query frame is
  scored, and each frame before the query (occluded in the ground truth, predicted visible) is
  a false positive. `tapvid_metrics`' "strided" mode scores that set of frames;
- the metrics are per video, then averaged over videos, and the average Jaccard also over the
  videos whose metadata.is_camera_moving is true, and over those where it is false.

fourds' readout predicts within a clip, so a whole-video track is chained from the test clips
(`chain_tracks`; fourds' choices, which the benchmark does not make):

- a video is the frames its test clips hold (fourds.data.benchmarks cuts them), then the frames
  past its last clip at the same frame stride: at frame_stride 1, every frame of the video;
- a track is predicted in the clip holding its query frame, from that frame on; in each later
  clip it is queried at the clip's first frame, at the position predicted at the previous
  clip's last frame;
- the frames before its query keep the query point (a false positive wherever it is); the frames
  past the video's last clip keep the last predicted position (a video shorter than a clip
  keeps its query points throughout);
- with frame_stride above 1, a track is queried at the first of its `frame_ids` that the strided
  video holds, and left out where it holds none.

`OfficialTracking` is the tracking task of a `perception_test` source: its evaluation carries
these numbers under OFFICIAL (in the readout stage's metrics.json, and its baseline's), beside the
per-clip headline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch

from fourds.config import SourceConfig
from fourds.data.curate import clip_starts
from fourds.data.readers.perception_test import PointTrackedVideo, read_point_tracks
from fourds.evaluate.metrics import tapvid_metrics
from fourds.evaluate.tasks.base import Evaluation, Infer, raster_location
from fourds.evaluate.tasks.tracking import TAPVID_SIZE, TrackingTask

OFFICIAL = "perception_test_official"

# (clip index, query frames int [Q] in the clip, query points float [Q, 2] (x, y) pixels)
#   -> predicted positions float [Q, T, 2] (x, y) pixels at each of the clip's T frames
Predict = Callable[[int, np.ndarray, np.ndarray], np.ndarray]


def video_metrics(
    tracks: np.ndarray, visible: np.ndarray, predicted: np.ndarray, query_frames: np.ndarray
) -> dict[str, float]:
    """TAP-Vid metrics of one whole video as the baseline notebook computes them.

    Args:
        tracks: float [P, T, 2] ground-truth (x, y), normalised to [0, 1] of the frame's width
            and height (any value where not visible).
        visible: bool [P, T], True at each track's annotated frames.
        predicted: float [P, T, 2] predicted (x, y), normalised; all of them count as visible.
        query_frames: int [P], each track's query frame (visible there).

    Returns `tapvid_metrics`' numbers at 256 x 256, over every frame but each query frame.
    """
    size = TAPVID_SIZE
    point = tracks[np.arange(len(tracks)), query_frames] * size
    query_points = np.column_stack([query_frames, point[:, 1], point[:, 0]])
    everywhere = np.zeros(visible.shape, bool)  # no predicted occlusion
    return tapvid_metrics(
        query_points, ~visible, tracks * size, everywhere, predicted * size, "strided"
    )


def mean_over_videos(
    scores: Sequence[dict[str, float]], camera_moving: Sequence[bool | None]
) -> dict[str, float]:
    """Each metric's mean over the videos' `video_metrics`, "videos" their count, and where
    every video says whether its camera moves (`camera_moving`), "average_jaccard_moving_camera"
    and "average_jaccard_static_camera", each over the videos of its kind that there are."""
    if not scores:
        return {"videos": 0}
    means = {key: float(np.mean([score[key] for score in scores])) for key in scores[0]}
    means["videos"] = len(scores)
    if all(moving is not None for moving in camera_moving):
        for kind, moving in (("moving", True), ("static", False)):
            jaccard = [
                score["average_jaccard"]
                for score, kind_of in zip(scores, camera_moving, strict=True)
                if kind_of == moving
            ]
            if jaccard:
                means[f"average_jaccard_{kind}_camera"] = float(np.mean(jaccard))
    return means


def chain_tracks(
    predict: Predict,
    clips: Sequence[int],
    frames: int,
    query_frames: np.ndarray,
    query_points: np.ndarray,
    length: int,
) -> np.ndarray:
    """Whole-video tracks chained from a readout's clips, as the module docstring says.

    Args:
        predict: the readout on one clip (see Predict).
        clips: the video's clip indices, in order; clip k holds frames k*T .. (k+1)*T - 1 of
            the video, T = `frames`.
        query_frames: int [P], each track's query frame in [0, length).
        query_points: float [P, 2] (x, y) pixels, each track's point at its query frame.
        length: L, the video's frames (at least len(clips) * T).

    Returns float32 [P, L, 2] (x, y) pixels.
    """
    chained = np.repeat(query_points[:, None].astype(np.float32), length, axis=1)
    for number, clip in enumerate(clips):
        start = number * frames
        live = np.flatnonzero(query_frames < start + frames)  # queried here or before
        if not len(live):
            continue
        starts_here = query_frames[live] >= start
        local = np.where(starts_here, query_frames[live] - start, 0)
        previous = chained[live, max(start - 1, 0)]  # the last frame of the previous clip
        points = np.where(starts_here[:, None], query_points[live], previous)
        positions = predict(clip, local, points)
        block = chained[live, start : start + frames]
        after = np.arange(frames) >= local[:, None]
        block[after] = positions[after]
        chained[live, start : start + frames] = block
    end = len(clips) * frames
    if end:
        held = np.flatnonzero(query_frames < end)
        chained[held, end:] = chained[held, end - 1 : end]
    return chained


@dataclasses.dataclass(frozen=True)
class WholeVideo:
    """One test video as its test clips cut it (the module docstring says which frames).

    tracks: float32 [P, L, 2] (x, y) normalised; visible: bool [P, L]; query_frames: int [P];
    clips: the indices of its test clips, in order; camera_moving: as the reader gives it.
    """

    tracks: np.ndarray
    visible: np.ndarray
    query_frames: np.ndarray
    clips: range
    camera_moving: bool | None


def whole_videos(
    entries: Sequence[PointTrackedVideo], frames: int, stride: int
) -> tuple[list[WholeVideo], int]:
    """The videos of an annotation file's `entries` (read_point_tracks, in file order) cut into
    clips of `frames` frames every `stride`-th one, as fourds.data.benchmarks cuts the test
    split, with the clip indices it gives them; and the number of clips. A video that keeps no
    track at the frame stride is left out (its clips still counted)."""
    span = (frames - 1) * stride + 1
    videos, clips = [], 0
    for entry in entries:
        starts = clip_starts(entry.num_frames, span)
        tail = np.arange(len(starts) * span, entry.num_frames, stride)
        held = np.concatenate([*(start + stride * np.arange(frames) for start in starts), tail])
        position = np.full(entry.num_frames, -1)
        position[held] = np.arange(len(held))
        tracks, visible = entry.arrays(1)
        queries = [position[ids][position[ids] >= 0][:1] for ids in entry.frame_ids]
        kept = [row for row, query in enumerate(queries) if len(query)]
        if kept:
            videos.append(WholeVideo(
                tracks[kept][:, held], visible[kept][:, held],
                np.concatenate([queries[row] for row in kept]),
                range(clips, clips + len(starts)), entry.camera_moving,
            ))  # fmt: skip
        clips += len(starts)
    return videos, clips


class OfficialTracking(TrackingTask):
    """The tracking task of a `perception_test` source: its evaluation is the per-clip one, its
    metrics carrying under OFFICIAL the challenge's numbers of the whole test videos, chained
    from the same readout on the same test clips."""

    def __init__(self, task: TrackingTask, entries: Sequence[PointTrackedVideo], stride: int):
        """`task` as it is, scoring also the test file's `entries` (read_point_tracks) cut at
        source.frame_stride `stride`."""
        super().__init__(task.geometry, task.queries, task.static)
        self.videos, self.clips = whole_videos(entries, task.geometry.frames, stride)

    def evaluate(self, infer: Infer, targets, batch_size: int) -> Evaluation:
        """TrackingTask.evaluate, and `official(infer)` under OFFICIAL.

        Raises:
            ValueError: the test clips are not the ones the annotation file's videos give.
        """
        if len(targets["tracks"]) != self.clips:
            raise ValueError(
                f"{len(targets['tracks'])} test clips, the annotation file's videos give "
                f"{self.clips}"
            )
        evaluation = super().evaluate(infer, targets, batch_size)
        metrics = {**evaluation.metrics, OFFICIAL: self.official(infer)}
        return evaluation._replace(metrics=metrics)

    def official(self, infer: Infer) -> dict[str, float]:
        """`mean_over_videos` of the whole test videos' `video_metrics`, each track chained
        from the readout behind `infer` (`chain_tracks`)."""
        size, predict, scores = self.geometry.size, self.clip_predictor(infer), []
        for video in self.videos:
            points = video.tracks[np.arange(len(video.tracks)), video.query_frames] * size
            chained = chain_tracks(
                predict, video.clips, self.geometry.frames,
                video.query_frames, points, video.tracks.shape[1],
            )  # fmt: skip
            scores.append(
                video_metrics(video.tracks, video.visible, chained / size, video.query_frames)
            )
        return mean_over_videos(scores, [video.camera_moving for video in self.videos])

    def clip_predictor(self, infer: Infer) -> Predict:
        """The readout behind `infer` as a Predict: its positions (`predict`) for queries at
        the given frames and points of a test clip."""

        def predict(clip: int, frames: np.ndarray, points: np.ndarray) -> np.ndarray:
            points = torch.from_numpy(points.astype(np.float32))
            queries = raster_location(
                torch.from_numpy(frames), points[:, 1], points[:, 0], self.geometry.shape
            )[None]
            positions, _ = self.predict(infer(torch.tensor([clip]), queries), queries)
            return positions[0].numpy()

        return predict


def challenge_task(task: TrackingTask, source: SourceConfig) -> OfficialTracking:
    """`task` on a `perception_test` source's clips, scoring also the videos of its test
    annotation file as the challenge does (fourds.config.formats' `challenge` entry)."""
    return OfficialTracking(task, read_point_tracks(source.test), source.frame_stride)
