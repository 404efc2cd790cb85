"""Value noise: smooth, in range, the lattice's values at its corners, and periodic."""

import numpy as np

from fourds.world.noise import LATTICE_SIZE, Lattice, fractal_noise, value_noise


def test_noise_is_in_range_and_smooth():
    lattice = Lattice.sample(np.random.default_rng(0))
    points = np.random.default_rng(1).uniform(-300.0, 300.0, size=(2000, 3))
    for noise in (value_noise, fractal_noise):
        values = noise(lattice, points)
        assert values.shape == (2000,) and values.min() >= 0.0 and values.max() <= 1.0
        nudged = noise(lattice, points + 1e-4)
        assert np.abs(nudged - values).max() < 0.01  # continuous: no checker edges
    assert value_noise(lattice, points).std() > 0.1


def test_corners_take_table_values_and_the_pattern_repeats():
    lattice = Lattice.sample(np.random.default_rng(2))
    size = LATTICE_SIZE
    corners = np.array([[0.0, 0.0, 0.0], [3.0, -7.0, 11.0], [1.0, 2.0, 3.0 * size + 1.0]])
    values = value_noise(lattice, corners)
    for value, (x, y, z) in zip(values, corners.astype(int), strict=True):
        assert value == lattice.values[((x % size) * size + y % size) * size + z % size]
    points = np.round(np.random.default_rng(3).uniform(0.0, 5.0, size=(50, 3)) * 64) / 64
    shifted = value_noise(lattice, points + [size, -2 * size, 5 * size])
    np.testing.assert_array_equal(value_noise(lattice, points), shifted)
