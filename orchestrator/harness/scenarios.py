"""Scenarios, seeded arrival schedules, query inputs and run limits: pure functions, no I/O.

Every random draw comes from ``numpy.random.Generator`` seeded from the run's seed and a stream
number, so that the arrivals of a server run and the inputs of query ``i`` are the same in every
run with that seed, whatever the scenario and the timing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

SINGLE_STREAM = "single-stream"
SERVER = "server"
OFFLINE = "offline"
SCENARIOS = (SINGLE_STREAM, SERVER, OFFLINE)

#: Stream numbers that keep arrivals, query inputs and warm-up inputs independent of each other.
ARRIVAL_STREAM = 1
QUERY_STREAM = 2
WARMUP_STREAM = 3
#: Arrival times drawn per call to the generator (memory stays bounded on long runs).
CHUNK = 1024
#: Per-query seeds are drawn below this bound (fits every KServe integer parameter type).
SEED_BOUND = 2**31


def poisson_arrivals_s(rate_qps: float, seed: int) -> Iterator[float]:
    """Arrival times of a Poisson process, s from the start, without end.

    Inter-arrival times are exponential with mean ``1 / rate_qps``, drawn in chunks of
    :data:`CHUNK` from a generator seeded by ``(seed, ARRIVAL_STREAM)``.

    Args:
        rate_qps: mean arrival rate, queries/s (> 0, finite).
        seed: the run's seed (>= 0).

    Raises:
        ValueError: a rate that is not a finite positive number.
    """
    if not (math.isfinite(rate_qps) and rate_qps > 0):
        raise ValueError(f"rate_qps must be a finite number > 0, got {rate_qps!r}")
    rng = np.random.default_rng([seed, ARRIVAL_STREAM])
    t_s = 0.0
    while True:
        for gap_s in rng.exponential(1.0 / rate_qps, size=CHUNK):
            t_s += float(gap_s)
            yield t_s


def query_inputs(seed: int, index: int, batch: int, num_classes: int, *, warmup: bool = False) -> tuple[list[int], int]:
    """The labels and the diffusion seed of query ``index``: a function of ``(seed, index)`` only.

    Args:
        seed: the run's seed (>= 0).
        index: the query's number in the run (>= 0).
        batch: images per query (labels drawn).
        num_classes: labels are drawn uniformly from ``0 .. num_classes - 1``.
        warmup: draw from the warm-up stream (warm-up queries never repeat measured ones).

    Returns:
        (labels, seed of the request).
    """
    rng = np.random.default_rng([seed, WARMUP_STREAM if warmup else QUERY_STREAM, index])
    labels = rng.integers(0, num_classes, size=batch)
    return [int(v) for v in labels], int(rng.integers(0, SEED_BOUND))


@dataclass(frozen=True)
class Limits:
    """When a run stops issuing queries, LoadGen style.

    A run issues until both minimums are met, or until a hard cap is reached (then the run is
    reported invalid, never silently shortened).

    Attributes:
        min_duration_s: at least this long, s (server: the schedule's time).
        min_queries: at least this many queries issued.
        max_duration_s: hard cap on the issuing time, s.
        max_queries: hard cap on the queries issued.
    """

    min_duration_s: float
    min_queries: int
    max_duration_s: float
    max_queries: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_duration_s) and self.min_duration_s >= 0):
            raise ValueError(f"min_duration_s must be a finite number >= 0, got {self.min_duration_s!r}")
        if self.min_queries < 1:
            raise ValueError(f"min_queries must be >= 1, got {self.min_queries}")
        if not (math.isfinite(self.max_duration_s) and self.max_duration_s > 0):
            raise ValueError(f"max_duration_s must be a finite number > 0, got {self.max_duration_s!r}")
        if self.max_queries < 1:
            raise ValueError(f"max_queries must be >= 1, got {self.max_queries}")

    def minimums_met(self, elapsed_s: float, issued: int) -> bool:
        return elapsed_s >= self.min_duration_s and issued >= self.min_queries

    def cap_reached(self, elapsed_s: float, issued: int) -> bool:
        return elapsed_s >= self.max_duration_s or issued >= self.max_queries

    def should_stop(self, elapsed_s: float, issued: int) -> bool:
        """True when no further query is to be issued."""
        return self.minimums_met(elapsed_s, issued) or self.cap_reached(elapsed_s, issued)
