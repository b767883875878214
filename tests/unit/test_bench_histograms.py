"""The histogram arithmetic of bench/apiserver_bench.py: a window of two
scrapes and the quantiles read from its buckets, as PromQL reads them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.histograms import EMPTY, Histogram, delta, label_values, quantile, read, summary

NAME = "apiserver_admission_webhook_admission_duration_seconds"


def exposition(series: dict[str, tuple[list[float], float]]) -> str:
    """An exposition of NAME with one series per webhook: cumulative counts
    for the bounds 0.005, 0.025, 0.1, +Inf, and a sum."""
    lines = [f"# TYPE {NAME} histogram"]
    for webhook, (counts, total) in series.items():
        labels = f'name="{webhook}",operation="CREATE",rejected="false",type="validating"'
        for le, n in zip(("0.005", "0.025", "0.1", "+Inf"), counts, strict=True):
            lines.append(f'{NAME}_bucket{{{labels},le="{le}"}} {n}')
        lines.append(f"{NAME}_sum{{{labels}}} {total}")
        lines.append(f"{NAME}_count{{{labels}}} {counts[-1]}")
    lines.append(f'{NAME}_other{{name="x"}} 99')  # a longer name with the same prefix
    return "\n".join(lines) + "\n"


def test_read_sums_the_series_it_is_asked_for() -> None:
    text = exposition({"validate.podgate.dev": ([1, 3, 4, 4], 0.05), "other": ([0, 0, 1, 2], 3.0)})
    both = read(text, NAME)
    assert both.buckets == ((0.005, 1), (0.025, 3), (0.1, 5), (math.inf, 6))
    assert both.count == 6
    assert both.sum == pytest.approx(3.05)
    ours = read(text, NAME, lambda labels: labels["name"] == "validate.podgate.dev")
    assert ours.buckets == ((0.005, 1), (0.025, 3), (0.1, 4), (math.inf, 4))
    assert ours.count == 4
    assert ours.bounds == (0.005, 0.025, 0.1)


def test_read_of_an_absent_histogram_is_empty() -> None:
    hist = read("# nothing here\nup 1\n", NAME)
    assert hist == EMPTY
    assert hist.mean is None
    assert quantile(hist, 0.5) is None


def test_read_unescapes_label_values() -> None:
    text = f'{NAME}_count{{name="a\\"b"}} 2\n{NAME}_sum{{name="a\\"b"}} 1\n'
    assert read(text, NAME, lambda labels: labels["name"] == 'a"b').count == 2


def test_delta_is_the_window_between_two_scrapes() -> None:
    before = read(exposition({"w": ([1, 3, 4, 4], 0.05)}), NAME)
    after = read(exposition({"w": ([11, 23, 24, 25], 0.55)}), NAME)
    window = delta(after, before)
    assert window.buckets == ((0.005, 10), (0.025, 20), (0.1, 20), (math.inf, 21))
    assert window.count == 21
    assert window.mean == pytest.approx(0.5 / 21)


def test_delta_from_nothing_is_the_later_scrape() -> None:
    after = read(exposition({"w": ([1, 2, 3, 3], 0.01)}), NAME)
    assert delta(after, EMPTY) == after


def test_delta_refuses_a_counter_that_went_down() -> None:
    before = read(exposition({"w": ([5, 5, 5, 5], 0.1)}), NAME)
    after = read(exposition({"w": ([1, 1, 1, 1], 0.01)}), NAME)
    with pytest.raises(ValueError, match="went down"):
        delta(after, before)


def test_delta_refuses_buckets_that_changed() -> None:
    before = Histogram(((0.5, 1), (math.inf, 1)), 1, 0.1)
    after = Histogram(((0.25, 1), (math.inf, 2)), 2, 0.2)
    with pytest.raises(ValueError, match="buckets changed"):
        delta(after, before)


def test_quantile_interpolates_within_the_bucket() -> None:
    # 10 below 5 ms, 10 in (5, 25] ms: the median is the top of the first
    # bucket, the 75th percentile half-way up the second
    hist = Histogram(((0.005, 10), (0.025, 20), (math.inf, 20)), 20, 0.2)
    assert quantile(hist, 0.5) == pytest.approx(0.005)
    assert quantile(hist, 0.75) == pytest.approx(0.015)
    assert quantile(hist, 0.25) == pytest.approx(0.0025)  # the first bucket starts at 0
    assert quantile(hist, 0.0) == pytest.approx(0.0)


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    hist = Histogram(((0.005, 1), (0.025, 2), (math.inf, 100)), 100, 50.0)
    assert quantile(hist, 0.99) == 0.025


def test_quantile_skips_empty_buckets_below_the_rank() -> None:
    hist = Histogram(((0.005, 0), (0.025, 0), (0.1, 4), (math.inf, 4)), 4, 0.2)
    assert quantile(hist, 0.5) == pytest.approx(0.025 + 0.075 * 0.5)


def test_quantile_refuses_a_q_outside_0_1() -> None:
    with pytest.raises(ValueError, match="not within"):
        quantile(Histogram(((math.inf, 1),), 1, 1), 1.5)


def test_summary_in_milliseconds() -> None:
    hist = Histogram(((0.005, 10), (0.025, 20), (math.inf, 20)), 20, 0.2)
    assert summary(hist) == {"count": 20, "mean": 10.0, "p50": 5.0, "p99": 24.6}


cumulative = st.lists(st.integers(0, 1000), min_size=3, max_size=3).map(
    lambda xs: [sum(xs[: i + 1]) for i in range(len(xs))]
)


@given(cumulative, st.floats(0, 1))
def test_quantile_is_monotonic_and_within_the_bounds(counts: list[int], q: float) -> None:
    hist = Histogram(((0.01, counts[0]), (0.1, counts[1]), (math.inf, counts[2])), counts[2], 0.0)
    value = quantile(hist, q)
    if counts[2] == 0:
        assert value is None
        return
    assert value is not None
    assert 0.0 <= value <= 0.1
    higher = quantile(hist, min(1.0, q + 0.1))
    assert higher is not None
    assert higher >= value


def test_label_values_lists_each_webhook_once() -> None:
    text = exposition({"validate.podgate.dev": ([1, 1, 1, 1], 0.001), "m": ([0, 1, 1, 1], 0.01)})
    assert label_values(text, NAME, "name") == {"validate.podgate.dev", "m"}
    assert label_values(text, NAME, "absent") == set()
