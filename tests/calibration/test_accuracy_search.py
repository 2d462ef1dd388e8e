"""The accuracy-aware search on a fake AP function: no ONNX runs."""

import pytest

from edgedet.calibration.accuracy import fewest_float_units


def _budget(fp32_ap, max_drop, ap_of, calls):
    def within(k):
        calls.append(k)
        return fp32_ap - ap_of(k) <= max_drop
    return within


@pytest.mark.parametrize("needed", [1, 2, 3, 7, 12, 13, 40])
def test_finds_the_fewest_units_that_meet_the_budget(needed):
    # AP rises with each unit in float and meets the budget from `needed` units on
    calls = []
    ap_of = lambda k: 0.70 - 0.02 * max(needed - k, 0)  # noqa: E731
    found = fewest_float_units(40, _budget(0.70, 0.01, ap_of, calls), max_steps=20)
    assert found == needed
    assert len(calls) <= 2 * 40 .bit_length()  # doubling then bisection, not a walk over 40 units
    assert len(set(calls)) == len(calls)  # no count measured twice


def test_the_doubling_stops_at_the_first_count_within_budget():
    calls = []
    fewest_float_units(100, _budget(0.7, 0.01, lambda k: 0.7 if k >= 3 else 0.5, calls), max_steps=20)
    assert calls == [1, 2, 4, 3]


def test_none_when_even_all_units_in_float_miss_the_budget():
    calls = []
    assert fewest_float_units(10, _budget(0.7, 0.01, lambda k: 0.5, calls), max_steps=20) is None
    assert calls == [1, 2, 4, 8, 10]


def test_max_steps_bounds_the_measurements():
    calls = []
    found = fewest_float_units(1000, _budget(0.7, 0.01, lambda k: 0.7 if k >= 700 else 0.5, calls), max_steps=12)
    assert len(calls) == 12
    assert found is not None and found >= 700  # within budget, though the bisection was cut short
    calls.clear()
    assert fewest_float_units(1000, _budget(0.7, 0.01, lambda k: 0.7 if k >= 700 else 0.5, calls), max_steps=3) is None
    assert calls == [1, 2, 4]


def test_no_units_no_search():
    assert fewest_float_units(0, lambda k: pytest.fail("nothing to measure"), max_steps=5) is None
