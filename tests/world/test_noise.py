"""Value noise: smooth, in range, and exactly the lattice's values at lattice corners."""

import numpy as np

from fourds.world.noise import Lattice, fractal_noise, value_noise


def test_noise_is_in_range_and_smooth():
    lattice = Lattice.sample(np.random.default_rng(0))
    points = np.random.default_rng(1).uniform(-300.0, 300.0, size=(2000, 3))
    for noise in (value_noise, fractal_noise):
        values = noise(lattice, points)
        assert values.shape == (2000,) and values.min() >= 0.0 and values.max() <= 1.0
        nudged = noise(lattice, points + 1e-4)
        assert np.abs(nudged - values).max() < 0.01  # continuous: no checker edges
    assert value_noise(lattice, points).std() > 0.1


def test_corners_take_table_values_and_the_pattern_repeats_every_256_cells():
    lattice = Lattice.sample(np.random.default_rng(2))
    corners = np.array([[0.0, 0.0, 0.0], [3.0, -7.0, 11.0]])
    values = value_noise(lattice, corners)
    perm = lattice.permutation
    for value, (x, y, z) in zip(values, corners.astype(int), strict=True):
        assert value == lattice.values[perm[(perm[(perm[x % 256] + y) % 256] + z) % 256]]
    points = np.round(np.random.default_rng(3).uniform(0.0, 5.0, size=(50, 3)) * 64) / 64
    np.testing.assert_array_equal(value_noise(lattice, points), value_noise(lattice, points + 256))
