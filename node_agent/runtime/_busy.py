"""Busy-time accounting: which share of a recent window any model was computing."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque

MAX_INTERVALS = 4096


class BusyMeter:
    """Records compute intervals (possibly overlapping, from several threads) and reports their union.

    Args:
        window_s: Length of the window :meth:`fraction` looks back over, seconds.
        clock: Monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, window_s: float = 10.0, clock=time.monotonic) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._clock = clock
        self._created_s = clock()
        self._done: deque[tuple[float, float]] = deque(maxlen=MAX_INTERVALS)
        self._active: dict[int, float] = {}
        self._tokens = itertools.count()
        self._lock = threading.Lock()

    def start(self) -> int:
        """Mark the start of a compute interval; returns the token to pass to :meth:`end`."""
        with self._lock:
            token = next(self._tokens)
            self._active[token] = self._clock()
            return token

    def end(self, token: int) -> None:
        """Mark the end of the interval started with ``token``."""
        with self._lock:
            start_s = self._active.pop(token, None)
            if start_s is not None:
                self._done.append((start_s, self._clock()))

    def fraction(self) -> float:
        """Busy share of the last ``window_s`` (or of the time since creation, if shorter), 0..1."""
        with self._lock:
            now_s = self._clock()
            intervals = [*self._done, *((s, now_s) for s in self._active.values())]
        span_s = min(self.window_s, now_s - self._created_s)
        if span_s <= 0:
            return 0.0
        lo_s = now_s - span_s
        busy_s, reach_s = 0.0, lo_s
        for start_s, end_s in sorted(intervals):
            start_s = max(start_s, reach_s)
            if end_s > start_s:
                busy_s += end_s - start_s
                reach_s = end_s
        return min(1.0, busy_s / span_s)
