"""How the report writes numbers: significant figures, human units, one power of ten."""

from __future__ import annotations

import pytest

from fourds.report.bootstrap import Estimate
from fourds.report.numbers import compact, human_count, power_of_ten, significant


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0002227, "0.000223"),
        (0.25, "0.250"),
        (0.09996, "0.100"),  # rounding carries into the next digit
        (16.8273, "16.8"),
        (12345.6, "12300"),
        (-0.0041394, "-0.00414"),
        (1.5e-7, "1.50e-07"),  # outside the plain range
        (0.0, "0"),
        (float("nan"), "nan"),
    ],
)
def test_tables_write_three_significant_figures(value, text):
    assert significant(value) == text


def test_differences_carry_their_sign_and_intervals_their_bounds():
    assert significant(0.0043, signed=True) == "+0.00430"
    assert significant(-0.0043, signed=True) == "-0.00430"
    assert str(Estimate(0.26174, 0.2412, 0.2827)) == "0.262 [0.241, 0.283]"
    assert Estimate(0.1, -0.002, 0.3).format(signed=True) == "+0.100 [-0.00200, +0.300]"


def test_tick_labels_drop_trailing_zeros():
    assert [compact(v) for v in (0.25, 2.0, 0.1, 1.2000000000000002, 0.262)] == [
        "0.25",
        "2",
        "0.1",
        "1.2",
        "0.262",
    ]


def test_counts_are_written_in_human_units():
    assert human_count(508896) == "509k"
    assert human_count(1958240) == "1.96M"
    assert human_count(22e9) == "22.0B" and human_count(22e9, trim=True) == "22B"
    assert human_count(2e6, trim=True) == "2M" and human_count(96) == "96"


def test_a_column_of_flops_is_divided_by_the_power_of_ten_of_its_smallest_value():
    assert power_of_ten([1.0164e13, 1.9045e13, 0]) == 13  # the control's 0 is not counted
    assert power_of_ten([5e9, 3e11]) == 9
    assert power_of_ten([0]) == 0
