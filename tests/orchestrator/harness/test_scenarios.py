"""Arrival schedules, query inputs and run limits: statistics, determinism, edges."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest

from orchestrator.harness.scenarios import CHUNK, Limits, poisson_arrivals_s, query_inputs


def arrivals(rate_qps: float, seed: int, count: int) -> np.ndarray:
    return np.fromiter(islice(poisson_arrivals_s(rate_qps, seed), count), dtype=float)


def test_poisson_rate_and_exponential_gaps() -> None:
    rate_qps, count = 50.0, 20_000
    times = arrivals(rate_qps, 7, count)
    gaps = np.diff(times, prepend=0.0)
    assert np.all(gaps > 0)
    # Mean gap 1/rate: standard error 0.7 % at this count; the achieved rate is within 3 %.
    assert count / times[-1] == pytest.approx(rate_qps, rel=0.03)
    # Exponential gaps: coefficient of variation 1 (a fixed-interval schedule would give 0).
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.03)
    # Poisson counts per second: variance equals mean (index of dispersion 1).
    per_s = np.bincount(times.astype(int))[:-1]
    assert per_s.mean() == pytest.approx(rate_qps, rel=0.05)
    assert per_s.var() / per_s.mean() == pytest.approx(1.0, abs=0.2)


def test_poisson_schedule_is_deterministic_and_seeded() -> None:
    a, b = arrivals(10.0, 3, 2 * CHUNK + 5), arrivals(10.0, 3, 2 * CHUNK + 5)
    assert np.array_equal(a, b)
    assert not np.allclose(a[:100], arrivals(10.0, 4, 100))
    # Drawing more does not change the prefix (chunk boundaries are invisible).
    assert np.array_equal(arrivals(10.0, 3, 10), a[:10])
    # Twice the rate: the same seed gives times scaled by one half.
    assert np.allclose(arrivals(20.0, 3, 50), a[:50] / 2)


@pytest.mark.parametrize("rate", [0.0, -1.0, float("inf"), float("nan")])
def test_poisson_rejects_bad_rates(rate: float) -> None:
    with pytest.raises(ValueError, match="rate_qps"):
        next(poisson_arrivals_s(rate, 0))


def test_query_inputs_depend_on_seed_and_index_only() -> None:
    labels, seed = query_inputs(5, 12, batch=4, num_classes=10)
    assert (labels, seed) == query_inputs(5, 12, batch=4, num_classes=10)
    assert len(labels) == 4 and all(0 <= v < 10 for v in labels)
    assert query_inputs(5, 13, 4, 10) != (labels, seed)
    assert query_inputs(6, 12, 4, 10) != (labels, seed)
    assert query_inputs(5, 12, 4, 10, warmup=True) != (labels, seed)
    drawn = [v for i in range(300) for v in query_inputs(0, i, 1, 3)[0]]
    assert set(drawn) == {0, 1, 2}
    assert len({query_inputs(0, i, 1, 10)[1] for i in range(300)}) == 300


def test_limits_need_both_minimums_and_stop_at_a_cap() -> None:
    limits = Limits(min_duration_s=1.0, min_queries=10, max_duration_s=5.0, max_queries=100)
    assert not limits.should_stop(0.5, 50)  # queries met, duration not
    assert not limits.should_stop(2.0, 9)  # duration met, queries not
    assert limits.should_stop(1.0, 10) and limits.minimums_met(1.0, 10)
    assert limits.should_stop(5.0, 3) and not limits.minimums_met(5.0, 3)
    assert limits.should_stop(0.1, 100) and limits.cap_reached(0.1, 100)
    with pytest.raises(ValueError, match="min_queries"):
        Limits(1.0, 0, 5.0, 100)
    with pytest.raises(ValueError, match="max_duration_s"):
        Limits(1.0, 1, float("inf"), 100)
