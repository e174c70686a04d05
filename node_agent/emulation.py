"""Labelled emulations: the WAN round trip a `cloud` agent adds to its responses.

Nothing here is measured; every value it produces travels with a label saying what it models.
"""

from __future__ import annotations

import threading
from statistics import NormalDist

import numpy as np

#: The emulated delay's normal distribution is cut at this many standard deviations either side.
TRUNCATION_SD = 3.0
_STANDARD_NORMAL = NormalDist()


class EmulatedDelay:
    """An emulated wide-area-network round trip, added once to every generation response (labelled).

    What it models: the agent stands for a `cloud` server that clients reach across a WAN. The
    whole round-trip time (request one way plus response the other: propagation and WAN queuing)
    is lumped into one delay, held on the response after the result is computed, so
    ``total_time_s`` and a client's own latency include it. It is **not** measured and it does not
    model message-size-dependent transfer time (bandwidth), loss and retransmission, asymmetric
    directions or correlation between successive requests; compute, queue, energy and memory
    figures are measured as on any agent and do not include it. Error answers (bad input, a full
    queue, a deadline passed) are not delayed.

    Distribution: ``delay_ms = mean_ms + jitter_ms * z`` where ``z`` is a standard normal truncated
    to ``[max(-3, -mean_ms / jitter_ms), 3]``, so every delay lies in
    ``[max(0, mean_ms - 3 jitter_ms), mean_ms + 3 jitter_ms]``. Each draw with jitter takes exactly one
    uniform number from numpy's PCG64 generator seeded with ``seed`` (inverse CDF), so the n-th draw
    of a fresh instance is the same on every run. ``jitter_ms = 0`` gives a constant delay; mean and
    jitter both 0 give none.

    Args:
        mean_ms: mean of the untruncated normal, milliseconds (>= 0).
        jitter_ms: its standard deviation, milliseconds (>= 0).
        seed: seed of the draws.
    """

    def __init__(self, mean_ms: float = 0.0, jitter_ms: float = 0.0, seed: int = 0) -> None:
        if not (mean_ms >= 0.0 and jitter_ms >= 0.0):  # also refuses NaN
            raise ValueError(f"mean_ms and jitter_ms must be >= 0, got {mean_ms}, {jitter_ms}")
        self.mean_ms = float(mean_ms)
        self.jitter_ms = float(jitter_ms)
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self._lock = threading.Lock()
        low_sd = -TRUNCATION_SD if self.jitter_ms == 0 else max(-TRUNCATION_SD, -self.mean_ms / self.jitter_ms)
        self._cdf_low = _STANDARD_NORMAL.cdf(low_sd)
        self._cdf_high = _STANDARD_NORMAL.cdf(TRUNCATION_SD)
        self.min_ms = max(0.0, self.mean_ms + low_sd * self.jitter_ms)
        self.max_ms = self.mean_ms + TRUNCATION_SD * self.jitter_ms

    @property
    def enabled(self) -> bool:
        """Whether any delay is added."""
        return self.max_ms > 0.0

    @property
    def label(self) -> str:
        """The emulation model as reported with every delayed response; "" when there is none."""
        if not self.enabled:
            return ""
        if self.jitter_ms == 0.0:
            return f"emulated-wan-rtt:constant(mean_ms={self.mean_ms:g})"
        return (
            f"emulated-wan-rtt:truncnormal(mean_ms={self.mean_ms:g},jitter_ms={self.jitter_ms:g},"
            f"range_ms={self.min_ms:g}..{self.max_ms:g},seed={self.seed})"
        )

    def draw_s(self) -> float:
        """The next delay, in seconds (0 when disabled, without consuming a draw)."""
        if not self.enabled:
            return 0.0
        if self.jitter_ms == 0.0:
            return self.mean_ms / 1e3
        with self._lock:
            u = float(self._rng.random())
        p = self._cdf_low + u * (self._cdf_high - self._cdf_low)
        p = min(max(p, 1e-12), 1.0 - 1e-12)  # inv_cdf needs 0 < p < 1
        delay_ms = self.mean_ms + self.jitter_ms * _STANDARD_NORMAL.inv_cdf(p)
        return min(max(delay_ms, self.min_ms), self.max_ms) / 1e3
