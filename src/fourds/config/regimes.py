"""The readout regimes, one entry each: what a regime does with the scale's encoder and how
fourds names it.

`readout.regimes` lists keys of REGIMES, one readout stage each (`<scale>-<task>-<regime>`).
The readout stage reads `pretrained` (whether it loads the scale's checkpoint) and
`trains_encoder` (whether the encoder trains beside the readout: fp32, its features never
cached); the report and `fourds answer` read the names. PRETRAINED and CONTROL are the pair the
verdicts compare: the pretrained encoder, frozen, against the same architecture as pretraining
starts it. No imports beyond the standard library: params import it.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class RegimeEntry:
    """One regime (module docstring)."""

    pretrained: bool  # loads the scale's pretrained checkpoint (else: its initial encoder)
    trains_encoder: bool  # the encoder trains too, at readout.finetune_lr_scale x the lr
    name: str  # how the report's prose names it
    plot_label: str  # how the scaling plots name it


REGIMES: dict[str, RegimeEntry] = {
    "frozen": RegimeEntry(True, False, "frozen", "pretrained (frozen)"),
    "finetuned": RegimeEntry(True, True, "fine-tuned", "fine-tuned"),
    "random_init": RegimeEntry(False, False, "the random-init control", "random-init control"),
}
PRETRAINED, CONTROL = "frozen", "random_init"
