"""A frozen encoder's features computed once for every task of a readout stage that reads the
same clips.

The tasks of one scale and regime whose data is the same curated corpus read the same clips:
the readout-test split, and a train split that is the readout-train clips followed by clips cut
from the pretraining segments in one order, of which each task takes its own number
(readouts.<task>.pretrain_clips; fourds.data.benchmarks.pretrain_clips). So the stage encodes
each split once, for the task reading the most of it, and every other task reads the first
of those features: the same features it would have computed (up to the rounding of another
batch size). Tasks of other data (a benchmark each) share nothing: the stage reads out the
tasks of one source after another, and the store keeps the features of one source at a time.
"""

from __future__ import annotations

import numpy as np
import torch

from fourds.data.spill import HostBudget
from fourds.evaluate.readout import Features, test_features
from fourds.models.vit import VideoViT


class FeatureStore:
    """The features of every split of one source that a readout stage's frozen encoder has
    encoded, on `device`, kept within `budget` (fourds.evaluate.readout.Features)."""

    def __init__(self, device: torch.device, budget: HostBudget):
        self.device, self.budget = device, budget
        self.source: object = None
        self.encoded: list[Features] = []

    def use(self, source: object) -> None:
        """Keep the features of `source` (a readouts.<task>.source) from now: those of another
        source are let go."""
        if source != self.source:
            self.source, self.encoded = source, []

    def features(
        self, encoder: VideoViT, videos: np.ndarray, num_blocks: int, batch_size: int
    ) -> Features:
        """The features of the clips `videos` [N, T, H, W, 3] uint8 (the output of the
        encoder's first `num_blocks` blocks): the first N of clips encoded before where those
        begin with `videos` and came from the same encoder and blocks, else encoded now in
        eval mode (`batch_size` clips at a time) and kept."""
        for encoded in self.encoded:
            if (
                encoded.encoder is encoder
                and encoded.num_blocks == num_blocks
                and len(encoded.videos) >= len(videos)
                and np.array_equal(encoded.videos[: len(videos)], videos)
            ):
                return encoded.first(len(videos))
        features = test_features(
            encoder, {"video": videos}, num_blocks, self.device, batch_size, self.budget
        )
        self.encoded.append(features)
        return features
