"""Measurement windows and the run's validity verdict, as perf_analyzer judges stability.

The completed queries, in completion order, are split into consecutive windows of (nearly) equal
query counts. A window's throughput is its queries over the time from the previous window's last
completion (the run start for the first window) to its own last completion; its latency is the
median of its queries' latencies. The run is stable when, over the last :data:`STABLE_WINDOWS`
windows, the throughput and the p50 latency each agree within :data:`TOLERANCE`
(``max / min - 1 <= 0.10``). A run is valid when it is stable, met its minimum duration and query
count without hitting a hard cap, and lost no query (none failed, none dropped).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TOLERANCE = 0.10
STABLE_WINDOWS = 3
#: Fewest completed queries a window needs for a meaningful median.
MIN_QUERIES_PER_WINDOW = 3
#: Slack for float rounding at the edge (1.1 / 1.0 - 1 is 0.10000000000000009).
_EPS = 1e-9


@dataclass(frozen=True)
class Window:
    """One measurement window.

    Attributes:
        index: 0-based position in the run.
        queries: completed queries in it.
        start_s: its start, s from the run start.
        end_s: its last completion, s from the run start.
        throughput_qps: ``queries / (end_s - start_s)``, queries/s.
        latency_s_p50: median latency of its queries, s.
    """

    index: int
    queries: int
    start_s: float
    end_s: float
    throughput_qps: float
    latency_s_p50: float


@dataclass(frozen=True)
class Stability:
    """Agreement of the last windows: spreads are ``max / min - 1`` (None: not computable)."""

    stable: bool
    throughput_spread: float | None
    latency_spread: float | None
    reason: str


@dataclass(frozen=True)
class Verdict:
    """The run's validity: every check by name, and one sentence saying why."""

    valid: bool
    checks: dict[str, bool]
    reason: str


def make_windows(done_s: Sequence[float], latency_s: Sequence[float], count: int) -> list[Window]:
    """Split completed queries into ``count`` consecutive windows by completion time.

    Args:
        done_s: completion times of the completed queries, s from the run start.
        latency_s: their latencies, s (same order as ``done_s``).
        count: windows wanted (fewer when there are fewer queries).
    """
    if len(done_s) != len(latency_s):
        raise ValueError(f"{len(done_s)} completion times but {len(latency_s)} latencies")
    order = np.argsort(np.asarray(done_s, dtype=float), kind="stable")
    done = np.asarray(done_s, dtype=float)[order]
    latency = np.asarray(latency_s, dtype=float)[order]
    windows: list[Window] = []
    start_s = 0.0
    for index, part in enumerate(p for p in np.array_split(np.arange(len(done)), max(1, count)) if len(p)):
        end_s = float(done[part[-1]])
        span_s = end_s - start_s
        windows.append(
            Window(
                index=index,
                queries=len(part),
                start_s=start_s,
                end_s=end_s,
                throughput_qps=len(part) / span_s if span_s > 0 else math.inf,
                latency_s_p50=float(np.median(latency[part])),
            )
        )
        start_s = end_s
    return windows


def spread(values: Sequence[float]) -> float:
    """``max / min - 1``; infinite when the minimum is not positive or a value is not finite."""
    low, high = min(values), max(values)
    if low <= 0 or not math.isfinite(high):
        return math.inf
    return high / low - 1.0


def check_stability(windows: Sequence[Window], tolerance: float = TOLERANCE, last: int = STABLE_WINDOWS) -> Stability:
    """Whether the last ``last`` windows agree within ``tolerance`` in throughput and p50 latency."""
    if len(windows) < last:
        return Stability(False, None, None, f"{len(windows)} measurement windows; {last} needed")
    tail = list(windows)[-last:]
    thin = [w.index for w in tail if w.queries < MIN_QUERIES_PER_WINDOW]
    if thin:
        return Stability(False, None, None, f"windows {thin} hold fewer than {MIN_QUERIES_PER_WINDOW} queries")
    throughput = spread([w.throughput_qps for w in tail])
    latency = spread([w.latency_s_p50 for w in tail])
    parts = []
    if throughput > tolerance + _EPS:
        parts.append(f"throughput varies {throughput:.1%} over the last {last} windows (limit {tolerance:.0%})")
    if latency > tolerance + _EPS:
        parts.append(f"p50 latency varies {latency:.1%} over the last {last} windows (limit {tolerance:.0%})")
    if parts:
        return Stability(False, throughput, latency, "; ".join(parts))
    return Stability(
        True,
        throughput,
        latency,
        f"last {last} windows agree: throughput within {throughput:.1%}, p50 latency within {latency:.1%}",
    )


def verdict(stability: Stability, minimums_met: bool, failed: int, dropped: int) -> Verdict:
    """Combine the checks; the reason names every failed check (or the stability figures)."""
    checks = {
        "minimums_met": minimums_met,
        "stable": stability.stable,
        "no_failed_queries": failed == 0,
        "no_dropped_queries": dropped == 0,
    }
    reasons = []
    if not checks["minimums_met"]:
        reasons.append("a hard cap stopped the run before its minimum duration and query count were met")
    if not stability.stable:
        reasons.append(stability.reason)
    if failed:
        reasons.append(f"{failed} queries failed")
    if dropped:
        reasons.append(f"{dropped} queries were dropped (in-flight bound reached)")
    valid = all(checks.values())
    return Verdict(valid, checks, stability.reason if valid else "; ".join(reasons))
