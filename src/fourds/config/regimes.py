"""The readout regimes, one entry each: what a regime does with the scale's encoder and how
fourds names it.

`readout.regimes` lists keys of REGIMES, one readout stage each (`<scale>-<regime>`).
The readout stage reads `weights` (what the encoder holds) and `trains_encoder` (whether the
encoder trains beside the readout: fp32, its features never cached); the report and `fourds
answer` read the names. The verdicts compare PRETRAINED, the pretrained encoder frozen, with a
control: the first of CONTROLS a study ran (`verdict_control`). "initial" is the encoder exactly
as pretraining starts it (same architecture, recipe and seed, step 0), so a gain over it is what
pretraining learned; "random_init" is a random network of the same architecture (residual
branches drawn at their xavier bound, where pretraining starts them at zero), the control of
studies made before "initial" existed. No imports beyond the standard library: params import it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable


@dataclasses.dataclass(frozen=True)
class RegimeEntry:
    """One regime (module docstring)."""

    weights: str  # "pretrained" (the scale's checkpoint), "initial" or "random" (module docstring)
    trains_encoder: bool  # the encoder trains too, at readout.finetune_lr_scale x the lr
    name: str  # how the report's prose names it
    plot_label: str  # how the scaling plots name it

    @property
    def pretrained(self) -> bool:
        """Whether the encoder is loaded from the scale's pretraining checkpoint."""
        return self.weights == "pretrained"


REGIMES: dict[str, RegimeEntry] = {
    "frozen": RegimeEntry("pretrained", False, "frozen", "pretrained (frozen)"),
    "finetuned": RegimeEntry("pretrained", True, "fine-tuned", "fine-tuned"),
    "initial": RegimeEntry(
        "initial", False, "the control at pretraining's start", "control (pretraining's start)"
    ),
    "random_init": RegimeEntry(
        "random", False, "the random-network control", "control (random network)"
    ),
}
PRETRAINED = "frozen"
CONTROLS = ("initial", "random_init")  # the verdicts' control: the first of these a study ran


def verdict_control(regimes: Iterable[str]) -> str | None:
    """The control the verdicts use among `regimes`: the first of CONTROLS there, or None."""
    present = set(regimes)
    return next((control for control in CONTROLS if control in present), None)
