"""Prometheus histograms from two scrapes: what happened in between.

The API server's admission and request latencies are cumulative histograms;
a benchmark window is the difference of a scrape after it and one before.
Quantiles are read from the buckets as PromQL's `histogram_quantile` reads
them (linear within a bucket), so they are only as fine as the buckets: the
bounds are kept with every figure so a reader can tell.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Labels = Mapping[str, str]


@dataclass(frozen=True)
class Histogram:
    """Cumulative buckets (upper bound, count), ascending, +Inf last; count; sum."""

    buckets: tuple[tuple[float, float], ...]
    count: float
    sum: float

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count > 0 else None

    @property
    def bounds(self) -> tuple[float, ...]:
        return tuple(le for le, _ in self.buckets if not math.isinf(le))


EMPTY = Histogram((), 0.0, 0.0)


def _labels(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    return {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(text)}


def read(
    exposition: str, name: str, where: Callable[[Labels], bool] = lambda labels: True
) -> Histogram:
    """The sum of every series of histogram `name` whose labels pass `where`
    (their `le` left out), as one histogram."""
    buckets: dict[float, float] = {}
    count = total = 0.0
    for line in exposition.splitlines():
        if not line.startswith(name):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        metric, labels = match.group(1), _labels(match.group(2))
        le = labels.pop("le", None)
        if not where(labels):
            continue
        value = float(match.group(3))
        if metric == f"{name}_bucket" and le is not None:
            bound = float(le)  # "+Inf" included
            buckets[bound] = buckets.get(bound, 0.0) + value
        elif metric == f"{name}_count":
            count += value
        elif metric == f"{name}_sum":
            total += value
    return Histogram(tuple(sorted(buckets.items())), count, total)


def label_values(exposition: str, name: str, label: str) -> set[str]:
    """Every value `label` takes in the series of histogram `name`."""
    values = set()
    for line in exposition.splitlines():
        if line.startswith(f"{name}_count"):
            match = _SAMPLE.match(line)
            if match is not None and match.group(1) == f"{name}_count":
                value = _labels(match.group(2)).get(label)
                if value is not None:
                    values.add(value)
    return values


def delta(after: Histogram, before: Histogram) -> Histogram:
    """What was observed between two scrapes of the same series.

    A series absent before (nothing observed yet) counts as zero. Should a
    bucket have fallen (the process restarted in between), the window is
    unknown and ValueError says so rather than a figure that is wrong.
    """
    earlier = dict(before.buckets)
    if before.buckets and set(earlier) - {le for le, _ in after.buckets}:
        raise ValueError("the buckets changed between the scrapes")
    buckets = tuple((le, n - earlier.get(le, 0.0)) for le, n in after.buckets)
    count = after.count - before.count
    if count < 0 or any(n < 0 for _, n in buckets):
        raise ValueError("a counter went down between the scrapes (restarted?)")
    return Histogram(buckets, count, after.sum - before.sum)


def quantile(hist: Histogram, q: float) -> float | None:
    """The q-quantile as `histogram_quantile` computes it, or None when empty.

    Linear interpolation inside the bucket the rank falls in, from 0 for the
    first bucket; a rank in the +Inf bucket gives the highest finite bound.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is not within [0, 1]")
    if not hist.buckets:
        return None
    total = hist.buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for le, cumulative in hist.buckets:
        if cumulative >= rank:
            if math.isinf(le):
                return lower_bound
            in_bucket = cumulative - lower_count
            if in_bucket <= 0:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / in_bucket
        lower_bound, lower_count = le, cumulative
    return lower_bound


def summary(hist: Histogram, scale: float = 1000.0) -> dict[str, float | int | None]:
    """count, mean, p50 and p99 (in ms with the default scale)."""

    def scaled(value: float | None) -> float | None:
        return None if value is None else round(value * scale, 3)

    return {
        "count": int(hist.count),
        "mean": scaled(hist.mean),
        "p50": scaled(quantile(hist, 0.50)),
        "p99": scaled(quantile(hist, 0.99)),
    }
