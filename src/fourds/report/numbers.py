"""How the report writes numbers: three significant figures, counts in human units.

Tables use `significant` (0.250, 0.000223, +0.00489: fixed significant figures, trailing zeros
kept, so a column reads at one precision); tick labels use `compact` (0.25, 2, 500k: no trailing
zeros). Neither writes a power of ten for values between 0.0001 and 100,000; counts such as
parameters go through `human_count` (509k, 1.96M, 22B), and a column or axis of FLOPs is
divided by one power of ten named once in its label (`power_of_ten`).
"""

from __future__ import annotations

import math

DIGITS = 3
PLAIN = (-4, 5)  # decimal exponents written without a power of ten
UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def significant(value: float, digits: int = DIGITS, signed: bool = False) -> str:
    """`value` to `digits` significant figures, trailing zeros kept ("0.250"); "+" on positive
    values when `signed`; "nan" for NaN."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    rounded = float(f"{value:.{digits - 1}e}")  # so 0.09996 counts as 0.100, not 0.0999
    exponent = math.floor(math.log10(abs(rounded)))
    sign = "+" if signed else ""
    if not PLAIN[0] <= exponent <= PLAIN[1]:
        return f"{rounded:{sign}.{digits - 1}e}"
    return f"{rounded:{sign}.{max(digits - 1 - exponent, 0)}f}"


def compact(value: float, digits: int = DIGITS) -> str:
    """`value` to at most `digits` significant figures, without trailing zeros ("0.25", "2")."""
    text = significant(value, digits)
    if "." in text and "e" not in text:
        text = text.rstrip("0").rstrip(".")
    return text


def human_count(value: float, digits: int = DIGITS, trim: bool = False) -> str:
    """A count with a unit suffix: 508896 -> "509k", 1958240 -> "1.96M" ("2M" for 2e6 when
    `trim`: the tick-label form); below a thousand, the count as it is ("96")."""
    write = compact if trim else significant
    for size, unit in UNITS:
        if abs(value) >= size:
            return write(value / size, digits) + unit
    return compact(value, digits)


def power_of_ten(values: list[float]) -> int:
    """The power of ten of the smallest positive value: dividing by it puts the column's
    numbers between 1 and the spread of the column (0 when none is positive)."""
    positive = [abs(value) for value in values if value]
    return math.floor(math.log10(min(positive))) if positive else 0
