"""Measurement windows and the validity verdict on synthetic data, including the 10 % edge."""

from __future__ import annotations

import pytest

from orchestrator.harness.validity import Stability, Window, check_stability, make_windows, spread, verdict


def windows(throughputs: list[float], latencies: list[float], queries: int = 10) -> list[Window]:
    return [
        Window(i, queries, float(i), float(i + 1), qps, lat)
        for i, (qps, lat) in enumerate(zip(throughputs, latencies, strict=True))
    ]


def test_make_windows_splits_by_completion_and_measures_each() -> None:
    # 12 completions every 0.1 s (given out of order), latency = 10 ms + 1 ms per query.
    done = [0.1 * (i + 1) for i in range(12)]
    latency = [0.010 + 0.001 * i for i in range(12)]
    got = make_windows(done[::-1], latency[::-1], 3)
    assert [w.queries for w in got] == [4, 4, 4]
    assert [w.start_s for w in got] == pytest.approx([0.0, 0.4, 0.8])
    assert [w.end_s for w in got] == pytest.approx([0.4, 0.8, 1.2])
    assert [w.throughput_qps for w in got] == pytest.approx([10.0, 10.0, 10.0])
    assert [w.latency_s_p50 for w in got] == pytest.approx([0.0115, 0.0155, 0.0195])
    assert len(make_windows(done[:2], latency[:2], 5)) == 2
    assert make_windows([], [], 5) == []


def test_equal_windows_are_stable() -> None:
    result = check_stability(windows([50, 100, 100, 100], [0.5, 0.01, 0.01, 0.01]))
    assert result.stable and result.throughput_spread == 0 and result.latency_spread == 0


def test_ten_percent_is_the_edge() -> None:
    # max/min - 1 == 0.10 exactly (in decimal) passes, for throughput and for latency.
    assert check_stability(windows([100, 110, 105], [0.010, 0.011, 0.0105])).stable
    over = check_stability(windows([100, 110.1, 105], [0.010, 0.010, 0.010]))
    assert not over.stable and "throughput varies 10.1%" in over.reason and "latency" not in over.reason
    over = check_stability(windows([100, 100, 100], [0.010, 0.01101, 0.010]))
    assert not over.stable and "p50 latency varies 10.1%" in over.reason and "throughput" not in over.reason


def test_only_the_last_three_windows_count() -> None:
    assert check_stability(windows([10, 500, 100, 100, 100], [1.0, 0.001, 0.01, 0.01, 0.01])).stable
    assert not check_stability(windows([100, 100, 100, 100, 200], [0.01] * 5)).stable


def test_too_few_or_too_thin_windows_are_not_stable() -> None:
    few = check_stability(windows([100, 100], [0.01, 0.01]))
    assert not few.stable and "2 measurement windows" in few.reason
    thin = check_stability(windows([100, 100, 100], [0.01] * 3, queries=2))
    assert not thin.stable and "fewer than 3 queries" in thin.reason


def test_spread_handles_zero_and_infinity() -> None:
    assert spread([2.0, 3.0]) == pytest.approx(0.5)
    assert spread([0.0, 1.0]) == float("inf")
    assert spread([1.0, float("inf")]) == float("inf")


def test_verdict_names_every_failed_check() -> None:
    stable = Stability(True, 0.01, 0.02, "last 3 windows agree")
    ok = verdict(stable, minimums_met=True, failed=0, dropped=0)
    assert ok.valid and ok.reason == "last 3 windows agree" and all(ok.checks.values())
    bad = verdict(Stability(False, 0.5, 0.0, "throughput varies 50.0%"), False, failed=2, dropped=3)
    assert not bad.valid
    assert bad.checks == {
        "minimums_met": False,
        "stable": False,
        "no_failed_queries": False,
        "no_dropped_queries": False,
    }
    for words in ("hard cap", "throughput varies", "2 queries failed", "3 queries were dropped"):
        assert words in bad.reason
    assert not verdict(stable, True, failed=0, dropped=1).valid
