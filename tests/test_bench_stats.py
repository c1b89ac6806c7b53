"""Statistics behind the bench report: percentiles, median and spread."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.bench.stats import median, percentile, ratio, spread


def test_percentile_interpolates_like_numpy() -> None:
    data = [1.0, 2.0, 3.0, 4.0]
    # numpy.percentile([1, 2, 3, 4], q) with linear interpolation
    assert percentile(data, 0) == 1.0
    assert percentile(data, 50) == 2.5
    assert percentile(data, 99) == pytest.approx(3.97)
    assert percentile(data, 100) == 4.0
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0  # unsorted input


def test_percentile_edge_cases() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, math.nan, 3.0], 50) == 2.0
    with pytest.raises(ValueError):
        percentile([1.0], 101)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50), st.floats(0, 100))
def test_percentile_stays_within_data(values: list[float], pct: float) -> None:
    p = percentile(values, pct)
    assert p is not None
    assert min(values) - 1e-6 <= p <= max(values) + 1e-6


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=50))
def test_percentile_is_monotonic(values: list[float]) -> None:
    ps = [percentile(values, q) for q in (0, 25, 50, 75, 99, 100)]
    assert ps == sorted(ps)


def test_median_and_spread() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    s = spread([10.0, 12.0, 11.0])
    assert s is not None
    assert (s.median, s.min, s.max, s.n) == (11.0, 10.0, 12.0, 3)
    assert s.rel == pytest.approx(2 / 11)
    assert s.to_dict()["rel"] == pytest.approx(2 / 11)
    assert spread([]) is None


def test_ratio_refuses_missing_and_zero() -> None:
    assert ratio(23.2, 9.9) == pytest.approx(2.3434, rel=1e-3)
    assert ratio(None, 1.0) is None
    assert ratio(1.0, 0.0) is None
