"""The example figures: many pictures drawn as one mosaic, each tile where its corner says."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from fourds.evaluate.pictures import GAP, _mosaic, boxes_figure, depth_figure, reconstruction_figure
from fourds.evaluate.reconstruction import Reconstruction

PNG = b"\x89PNG\r\n\x1a\n"


def test_each_tile_lies_at_its_corner_with_its_title_and_name():
    rng = np.random.default_rng(0)
    rows = [[rng.integers(0, 255, (5, 7, 3), dtype=np.uint8) for _ in range(3)] for _ in range(2)]
    figure, axis, corners = _mosaic(rows, ["a", "b", "c"], ["first", "second"])
    grid = np.asarray(axis.images[0].get_array())
    assert grid.shape == (2 * 5 + GAP, 3 * 7 + 2 * GAP, 3)
    for tiles, row_corners in zip(rows, corners, strict=True):
        for tile, (x, y) in zip(tiles, row_corners, strict=True):
            np.testing.assert_array_equal(grid[y : y + 5, x : x + 7], tile)
    assert (grid[5:7] == 255).all() and (grid[:, 7:9] == 255).all()  # the gaps are white
    assert sorted(text.get_text() for text in axis.texts) == ["a", "b", "c", "first", "second"]
    plt.close(figure)


def test_the_mosaic_figures_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    videos = rng.integers(0, 255, (2, 5, 16, 24, 3), dtype=np.uint8)
    depth = rng.random((2, 5, 16, 24)).astype(np.float32)
    depth[1] = 0  # no valid depth in the second clip: drawn on a unit scale
    boxes = np.tile(np.array([2.0, 3.0, 30.0, 12.0]), (2, 1, 5, 1))  # past the frame's right
    visible = np.ones((2, 1, 5), bool)
    reconstruction = Reconstruction(
        torch.from_numpy(videos), torch.from_numpy(videos[::-1].copy()),
        torch.from_numpy(rng.random((2, 5, 16, 24)) > 0.5),
    )  # fmt: skip
    written = [
        depth_figure(videos, depth, depth * 2, tmp_path / "depth.png"),
        boxes_figure(videos, (boxes, visible), boxes + 1, tmp_path / "boxes.png"),
        reconstruction_figure(reconstruction, [0, 4], tmp_path / "reconstructions.png"),
    ]
    assert all(path.read_bytes()[:8] == PNG for path in written)
    assert not plt.get_fignums()  # each closed
