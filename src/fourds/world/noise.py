"""Smooth procedural texture: fractal value noise on an integer lattice, in exact arithmetic.

A `Lattice` holds a scene's random table: a permutation of 0..255 that hashes integer cell
corners and a value in [0, 1] per hash. Noise at a point interpolates the eight corner values
of its cell with smoothstep weights, so it is smooth (C1) and low-frequency at the scale of
a cell. Per point this costs floor, integer and/or/add, table look-ups and +, -, *: all exact
in IEEE arithmetic, so textures re-render bit for bit (see fourds.world.render).
"""

from __future__ import annotations

import dataclasses

import numpy as np

LATTICE_SIZE = 256
OCTAVES = 3  # each octave doubles the frequency and halves the amplitude


@dataclasses.dataclass(frozen=True)
class Lattice:
    """A scene's noise table.

    Attributes:
        permutation: [LATTICE_SIZE] int64, a permutation of 0..LATTICE_SIZE-1 (corner hash).
        values: [LATTICE_SIZE] float64 in [0, 1], the noise value of each hash.
    """

    permutation: np.ndarray
    values: np.ndarray

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Lattice:
        return cls(
            permutation=rng.permutation(LATTICE_SIZE).astype(np.int64),
            values=rng.random(LATTICE_SIZE),
        )


def value_noise(lattice: Lattice, points: np.ndarray) -> np.ndarray:
    """Value noise at points [N, 3] (lattice units) -> [N] in [0, 1]."""
    floors = np.floor(points)
    fraction = points - floors
    weight = fraction * fraction * (3.0 - 2.0 * fraction)  # smoothstep: C1 across cells
    cells = floors.astype(np.int64)
    mask, perm = LATTICE_SIZE - 1, lattice.permutation
    # Corner hash perm[perm[perm[x] + y] + z] (indices wrap), shared between corners.
    by_x = [perm[(cells[:, 0] + dx) & mask] for dx in (0, 1)]
    by_xy = [[perm[(by_x[dx] + cells[:, 1] + dy) & mask] for dy in (0, 1)] for dx in (0, 1)]
    result = None
    # Interpolate along x, then y, then z, always in this order.
    for dz in (0, 1):
        plane = None
        for dy in (0, 1):
            low, high = (
                lattice.values[perm[(by_xy[dx][dy] + cells[:, 2] + dz) & mask]] for dx in (0, 1)
            )
            line = low + weight[:, 0] * (high - low)
            plane = line if plane is None else plane + weight[:, 1] * (line - plane)
        result = plane if result is None else result + weight[:, 2] * (plane - result)
    return result


def fractal_noise(lattice: Lattice, points: np.ndarray, contrast: float = 2.0) -> np.ndarray:
    """OCTAVES octaves of value noise at points [N, 3] (lattice units) -> [N] in [0, 1].

    Summed noise clusters around 0.5, so the sum is stretched by `contrast` about 0.5 and
    clipped, which spreads it over the colour ramp.
    """
    total, amplitude, norm = np.zeros(len(points)), 1.0, 0.0
    scaled = points
    for octave in range(OCTAVES):
        # Shift each octave by an odd offset so lattice corners of octaves do not coincide.
        total = total + amplitude * value_noise(lattice, scaled + 17.31 * octave)
        norm += amplitude
        amplitude *= 0.5
        scaled = scaled * 2.0
    return np.clip(0.5 + contrast * (total / norm - 0.5), 0.0, 1.0)
