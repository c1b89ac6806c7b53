"""Small statistics for benchmark runs: percentiles, median and spread.

Kept dependency-free and pure so the numbers in a report can be checked by
hand and by unit tests. Percentiles interpolate linearly between order
statistics, the same convention as ``numpy.percentile`` (which
``vllm bench serve`` uses), so p50/p99 line up with vLLM's own figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The ``pct`` percentile (0-100) of ``values``; None when there are none."""
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within 0..100, got {pct}")
    data = sorted(v for v in values if v is not None and not math.isnan(v))
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    rank = (len(data) - 1) * pct / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    frac = rank - low
    return data[low] + (data[high] - data[low]) * frac


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


@dataclass(frozen=True)
class Spread:
    """Median of repeated measurements with their range.

    ``rel`` is (max - min) / median: the figure to read before trusting a
    speedup, since a 1.1x gain inside a 20% spread is noise.
    """

    median: float
    min: float
    max: float
    n: int

    @property
    def rel(self) -> float:
        return (self.max - self.min) / self.median if self.median else 0.0

    def to_dict(self) -> dict[str, float]:
        data = asdict(self)
        data["rel"] = self.rel
        return data


def spread(values: Sequence[float]) -> Spread | None:
    """Median/min/max of ``values``; None when there are none."""
    data = [v for v in values if v is not None and not math.isnan(v)]
    if not data:
        return None
    mid = median(data)
    assert mid is not None
    return Spread(median=mid, min=min(data), max=max(data), n=len(data))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing or zero."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator
