"""The 4DS paper's headline numbers ("Scaling 4D Representations", frozen attention readouts),
read off its scaling figure to about +-0.01, for showing beside ours.

They are on the paper's benchmarks (Perception Test, RealEstate10K, ScanNet, Something-Something
v2, Waymo Open) at the paper's scales, not on this package's data: the trend is comparable, the
values are not. Sizes are the nominal ones the paper plots; `approximate` marks values the
figure gives only roughly ("~" in the source table).

Where they come from (`PaperSeries.cite`): every series was read off one figure of the paper,
the one that plots each task's frozen-readout metric against encoder size (20M to 22B). Its
number in the paper was not recorded when the values were read, and is not given here rather
than guessed; no value comes from a table of the paper.
"""

from __future__ import annotations

import dataclasses

CITATION = 'Carreira et al. (2024), "Scaling 4D Representations", arXiv:2412.15212'
SCALING_FIGURE = (
    "its scaling figure (each task's frozen-readout metric against encoder size, 20M to 22B), "
    "read off the plot to about ±0.01; the figure's number in the paper was not recorded, and "
    "no value comes from one of its tables"
)

# Nominal encoder sizes of the paper's ladder, as plotted.
SIZES = {
    "20M": 20e6,
    "100M": 100e6,
    "300M": 300e6,
    "600M": 600e6,
    "2B": 2e9,
    "4B": 4e9,
    "22B": 22e9,
}


@dataclasses.dataclass(frozen=True)
class PaperSeries:
    """One task's headline metric across the paper's ladder."""

    benchmark: str
    metric: str
    values: dict[str, float]  # size label -> value
    approximate: frozenset[str]  # size labels whose value is read roughly
    source: str = SCALING_FIGURE  # where in the paper the values are

    def cite(self) -> str:
        """The paper and where in it the values are, in words."""
        return f"{CITATION}, {self.source}"

    def points(self) -> list[tuple[str, float, float]]:
        """(size label, nominal parameters, value) in ladder order."""
        return [(size, SIZES[size], value) for size, value in self.values.items()]


def _series(benchmark: str, metric: str, table: str) -> PaperSeries:
    """Parse 'size value' pairs; a value written ~v is approximate."""
    values, approximate = {}, set()
    for size, value in zip(SIZES, table.split(), strict=True):
        if value.startswith("~"):
            approximate.add(size)
        values[size] = float(value.lstrip("~"))
    return PaperSeries(benchmark, metric, values, frozenset(approximate))


# Keyed by fourds task; values for 20M 100M 300M 600M 2B 4B 22B.
PAPER = {
    "tracking": _series(
        "Perception Test", "average Jaccard", ".759 .789 .815 ~.817 ~.826 .823 .834"
    ),
    "pose": _series("RealEstate10K", "end-point error", "~.73 .512 .326 .287 ~.27 ~.26 ~.24"),
    "depth": _series("ScanNet", "AbsRel", ".224 .163 .125 .115 .102 .094 .083"),
    "classification": _series(
        "Something-Something v2", "top-1 accuracy", "~.41 ~.50 .578 .604 .631 .645 .678"
    ),
    "boxes": _series("Waymo Open", "mean IoU", ".697 .727 .759 .762 ~.774 .781 ~.783"),
}
