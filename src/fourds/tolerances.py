"""The regeneration contract: how far a regenerated number may move from the pinned one.

`reports/tolerances.yaml` states, for each family of numbers a study writes (the curate,
pretrain and fidelity stages, and each readout task), a relative and an absolute
tolerance; a regenerated number `b` matches the pinned `a` when

    |a - b| <= relative * max(|a|, |b|) + absolute

(both NaN also match; an infinity matches only the same infinity; integers, such as counts,
must be equal, and so must text). `fourds compare` applies it to every number of
every metrics.json and clips.csv of a shipped study; `dvc metrics diff` stays the raw view.

A readout family may also give its metrics a margin of its readout seeds' own noise
(`seed_margin`, for threshold metrics, where a point or a box crossing its threshold moves a
number as another seed would): a number of its metrics.json then also matches when

    |a - b| <= seed_margin * sqrt(2 / S) * s

s the standard deviation over the S seeds of that metric's weighted clip mean in the pinned
clips.csv (`seed_noise`; sqrt(2 / S) s is the spread of the difference between the mean of S
seeds and the mean of S fresh ones); a strided tracking metric takes its first-query column's.
A number of one seed (each seed's headline and final training loss) matches within
seed_margin * sqrt(2) * s, s the spread of its list over the seeds: across CPU kernels a
readout's training can land where another seed would (`seed_margins`). A metric with no
per-clip column or per-seed list, or a readout of one seed, has no margin.
A readout's per-clip values (clips.csv) may have their own tolerance per task under
`readout_clips` (one clip's number moves more than a mean over the test clips; `relative:
.inf` holds them only through the task's headlines and the verdicts, fourds.report.stability);
else the task's. A family the file does not name is held to exact equality.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

import yaml

from fourds import layout
from fourds.config import ConfigError
from fourds.results_files import read_clip_rows


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """How far a number may move: relative to its size, plus an absolute floor."""

    relative: float = 0.0
    absolute: float = 0.0
    seed_margin: float = 0.0  # in the readout seeds' noise (module docstring)

    def allows(self, pinned: object, regenerated: object, margin: float = 0.0) -> bool:
        """Whether `regenerated` matches `pinned`: finite numbers within the tolerance, or
        within `margin` (a number's seed margin, `seed_noise` times `seed_margin`); integers,
        non-finite numbers and text equal (both NaN match)."""
        if _is_integer(pinned) and _is_integer(regenerated):
            return int(pinned) == int(regenerated)  # type: ignore[call-overload]
        try:
            a, b = float(pinned), float(regenerated)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return pinned == regenerated
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
        bound = max(self.relative * max(abs(a), abs(b)) + self.absolute, margin)
        return a == b or abs(a - b) <= bound


def seed_noise(clips_csv: str | Path) -> dict[str, float]:
    """column -> sqrt(2 / S) * s for every number column of a readout's clips.csv, s the
    standard deviation over its S seeds of the column's weighted mean over the clips (the
    finite values; rows of one seed each, "seed" column); {} for a readout of one seed."""
    rows = read_clip_rows(clips_csv)
    seeds = sorted({row.get("seed", "0") for row in rows})
    if len(seeds) < 2:
        return {}
    noise = {}
    for column in rows[0].keys() - {"seed", "clip", "weight"}:
        means = []
        for seed in seeds:
            pairs = [(_number(row[column]), float(row["weight"])) for row in rows
                     if row.get("seed", "0") == seed]  # fmt: skip
            kept = [(value, weight) for value, weight in pairs if math.isfinite(value)]
            total = sum(weight for _, weight in kept)
            means.append(sum(v * w for v, w in kept) / total if total > 0 else math.nan)
        if all(math.isfinite(mean) for mean in means):
            noise[column] = _mean_noise(means)
    return noise


def _mean_noise(values: list[float]) -> float:
    """sqrt(2 / S) s for one number per seed (S of them, standard deviation s): the spread of
    the difference between their mean and the mean of S fresh seeds'."""
    return math.sqrt(2 / len(values)) * statistics.stdev(values)


PER_SEED_LISTS = {  # metrics.json's lists of one number per readout seed -> the key of their mean
    "seed_headlines": None,  # the headline's own key, whose margin its clips.csv column gives
    "final_train_losses": "final_train_loss",
}
STRIDED = "strided_"  # the tracking protocol's other query frames: the same readout's numbers


def seed_margins(metrics: dict, clips_csv: str | Path, seed_margin: float) -> dict[str, float]:
    """Flattened metrics.json key -> how far a regeneration may move it in its readout seeds'
    noise, `seed_margin` times: a metric with a clips.csv column by `seed_noise` (its strided
    variant too); a number of one seed (`PER_SEED_LISTS`) by sqrt(2) s, s the standard
    deviation of its list over the seeds (a seed against a fresh one), and the list's mean by
    sqrt(2 / S) s. {} for a readout of one seed."""
    margins = {}
    if Path(clips_csv).is_file():
        margins = {key: seed_margin * noise for key, noise in seed_noise(clips_csv).items()}
        margins |= {STRIDED + key: margin for key, margin in margins.items()}
    for key, mean_key in PER_SEED_LISTS.items():
        values = metrics.get(key)
        if not isinstance(values, list) or len(values) < 2:
            continue
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            continue
        mean_margin = seed_margin * _mean_noise(values)
        one_seed = mean_margin * math.sqrt(len(values))  # sqrt(2) s: a seed against a fresh one
        margins |= {f"{key}.{seed}": one_seed for seed in range(len(values))}
        if mean_key is not None:
            margins[mean_key] = max(margins.get(mean_key, 0.0), mean_margin)
    return margins


def _number(text: str) -> float:
    """A clips.csv cell as a number (NaN where it holds none)."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def _is_integer(value: object) -> bool:
    """An integer as a results file holds one: a JSON integer, or a CSV cell of digits."""
    if isinstance(value, str):
        return value.strip().lstrip("+-").isdigit()
    return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class Contract:
    """Tolerances by family ("curate", "pretrain", "fidelity", "readout/<task>"); `default`
    for a family not named."""

    families: dict[str, Tolerance]
    default: Tolerance = Tolerance()

    @classmethod
    def uniform(cls, absolute: float) -> Contract:
        """Every number of every family within `absolute` (`fourds compare --tolerance`)."""
        return cls({}, Tolerance(absolute=absolute))

    def for_file(self, relative: str | Path) -> Tolerance:
        """The tolerance of a results file, by its path inside a shipped folder (e.g.
        readout/cpu_l-frozen/metrics/pose.json: family "readout/pose"; its clips/pose.csv:
        "readout_clips/pose" where named, else "readout/pose")."""
        family, readout = Path(relative).parts[0], layout.readout_result(relative)
        if readout is not None:
            task = readout[1]
            family = f"{layout.READOUT}/{task}"  # the family of its kind and task
            per_clip = f"readout_clips/{task}"
            if Path(relative).suffix == ".csv" and per_clip in self.families:
                family = per_clip
        return self.families.get(family, self.default)


EXACT = Contract({})  # every number as pinned


def load_contract(path: str | Path) -> Contract:
    """The contract of a tolerances file (see the module docstring).

    Raises:
        ConfigError: the file is missing, not YAML, or names a tolerance that is not a pair of
            non-negative numbers.
    """
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        reason = " ".join(str(error).split())
        raise ConfigError(f"{path}: cannot read the tolerances ({reason})") from None
    if not isinstance(raw, dict | None):
        raise ConfigError(f"{path}: the tolerances must be a mapping of families, not {raw!r}")
    families = {}
    for name, entry in (raw or {}).items():
        if name in ("readout", "readout_clips"):
            if not isinstance(entry, dict):
                raise ConfigError(f"{path}: {name} must map each task to its tolerances")
            families |= {f"{name}/{task}": _tolerance(path, f"{name}.{task}", value)
                         for task, value in entry.items()}  # fmt: skip
        else:
            families[name] = _tolerance(path, name, entry)
    return Contract(families)


def _tolerance(path: str | Path, name: str, entry: object) -> Tolerance:
    keys = ("relative", "absolute", "seed_margin")
    if not isinstance(entry, dict) or set(entry) - set(keys):
        raise ConfigError(
            f"{path}: {name} must be {{relative: x, absolute: y}} (and a readout's optional "
            f"seed_margin: z), not {entry!r}"
        )
    if "seed_margin" in entry and not name.startswith("readout."):
        raise ConfigError(f"{path}: {name}: only a readout family has a seed_margin")
    values = {key: entry.get(key, 0.0) for key in keys}
    for key, value in values.items():  # a bool is an int to Python, not a tolerance
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ConfigError(
                f"{path}: {name}.{key} must be a non-negative number (.inf: any), not {value!r}"
            )
    return Tolerance(*(float(values[key]) for key in keys))
