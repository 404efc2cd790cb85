"""Smooth procedural texture: fractal value noise on an integer lattice, in exact arithmetic.

A `Lattice` holds a scene's random table: a value in [0, 1] at every corner of a periodic
LATTICE_SIZE^3 grid of unit cells. Noise at a point interpolates the eight corner values of its
cell with smoothstep weights, so it is smooth (C1) and varies on the scale of a cell. Per point
this costs floor, integer and/multiply/add (the corner's index), table look-ups and +, -, *:
all exact in IEEE arithmetic, so textures re-render bit for bit (see fourds.world.render).
"""

from __future__ import annotations

import dataclasses

import numpy as np

LATTICE_SIZE = 16  # cells per period along each axis (power of two: wrap is a bit mask)
OCTAVES = 2  # each octave doubles the frequency and halves the amplitude


@dataclasses.dataclass(frozen=True)
class Lattice:
    """A scene's noise table.

    Attributes:
        values: [LATTICE_SIZE ** 3] float64 in [0, 1]: the value at corner (x, y, z) (taken
            modulo LATTICE_SIZE) is values[(x * LATTICE_SIZE + y) * LATTICE_SIZE + z].
    """

    values: np.ndarray

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Lattice:
        return cls(values=rng.random(LATTICE_SIZE**3))


def value_noise(lattice: Lattice, points: np.ndarray) -> np.ndarray:
    """Value noise at points [N, 3] (lattice units) -> [N] in [0, 1]."""
    floors = np.floor(points)
    fraction = points - floors
    weight = fraction * fraction * (3.0 - 2.0 * fraction)  # smoothstep: C1 across cells
    cells = floors.astype(np.int64)
    mask = LATTICE_SIZE - 1
    x = [((cells[:, 0] + d) & mask) * (LATTICE_SIZE * LATTICE_SIZE) for d in (0, 1)]
    y = [((cells[:, 1] + d) & mask) * LATTICE_SIZE for d in (0, 1)]
    z = [(cells[:, 2] + d) & mask for d in (0, 1)]
    # Corners in the order (dz, dy, dx), all looked up at once: [8, N].
    corners = lattice.values[
        np.stack([x[i] + y[j] + z[k] for k in (0, 1) for j in (0, 1) for i in (0, 1)])
    ]
    # Interpolate along x, then y, then z.
    lines = corners[0::2] + weight[:, 0] * (corners[1::2] - corners[0::2])  # [4, N]
    planes = lines[0::2] + weight[:, 1] * (lines[1::2] - lines[0::2])  # [2, N]
    return planes[0] + weight[:, 2] * (planes[1] - planes[0])


def fractal_noise(lattice: Lattice, points: np.ndarray, contrast: float = 2.0) -> np.ndarray:
    """OCTAVES octaves of value noise at points [N, 3] (lattice units) -> [N] in [0, 1].

    Summed noise clusters around 0.5, so the sum is stretched by `contrast` about 0.5 and
    clipped, which spreads it over the colour ramp.
    """
    total, amplitude, norm = np.zeros(len(points)), 1.0, 0.0
    scaled = points
    for octave in range(OCTAVES):
        # Shift each octave so that lattice corners of octaves do not coincide.
        total = total + amplitude * value_noise(lattice, scaled + 7.31 * octave)
        norm += amplitude
        amplitude *= 0.5
        scaled = scaled * 2.0
    return np.clip(0.5 + contrast * (total / norm - 0.5), 0.0, 1.0)
