"""Bounded, sequence-numbered telemetry log shared by the sampler thread and the gRPC servicer.

Sequence numbers start at 1 and never repeat. When the ring buffer is full the oldest sample is
overwritten; a reader that asks for a dropped sequence number gets the oldest available one and can
tell exactly how many it missed (`LogRead.missed`), so nothing is lost silently.

Appends come from a thread; readers may be threads (`read_from`, `wait_beyond_blocking`) or
coroutines on one or more asyncio event loops (`wait_beyond`), which are woken through
`loop.call_soon_threadsafe` — no polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from dataclasses import dataclass
from typing import NamedTuple

from node_agent.devices.base import Reading


@dataclass(frozen=True)
class TelemetrySample:
    """One entry of the log.

    Attributes:
        seq: Sequence number, from 1, strictly increasing.
        reading: The device reading.
        process_rss_bytes: Resident set size of the agent process at the read, bytes (psutil), or
            None if not measured.
    """

    seq: int
    reading: Reading
    process_rss_bytes: int | None = None


class LogRead(NamedTuple):
    """Result of `TelemetryLog.read_from`.

    Attributes:
        samples: Samples in sequence order, consecutive, at most `max_n`.
        next_seq: Sequence number to ask for next time.
        oldest_available_seq: Oldest sequence number still in the log at the time of the read.
    """

    samples: list[TelemetrySample]
    next_seq: int
    oldest_available_seq: int

    def missed(self, requested_seq: int) -> int:
        """How many samples from `requested_seq` on were dropped before this read could return them."""
        first = self.samples[0].seq if self.samples else self.next_seq
        return max(0, first - requested_seq)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class TelemetryLog:
    """Thread-safe ring buffer of `TelemetrySample`s.

    Args:
        capacity: Maximum number of samples kept (e.g. 10_000 = 100 s at 100 Hz).
    """

    def __init__(self, capacity: int = 10_000) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
        self._capacity = capacity
        self._buf: list[TelemetrySample | None] = [None] * capacity
        self._next_seq = 1
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiters: dict[asyncio.Future[None], tuple[asyncio.AbstractEventLoop, int]] = {}

    @property
    def capacity(self) -> int:
        """Maximum number of samples kept."""
        return self._capacity

    @property
    def latest_seq(self) -> int:
        """Sequence number of the newest sample, 0 if none yet."""
        with self._lock:
            return self._next_seq - 1

    @property
    def oldest_seq(self) -> int:
        """Sequence number of the oldest sample still kept (1 while nothing was dropped)."""
        with self._lock:
            return max(1, self._next_seq - self._capacity)

    @property
    def dropped_total(self) -> int:
        """Number of samples overwritten since the log was created."""
        with self._lock:
            return max(0, self._next_seq - 1 - self._capacity)

    def append(self, reading: Reading, process_rss_bytes: int | None = None) -> TelemetrySample:
        """Add a sample (any thread); wakes every waiter whose sequence number it passes."""
        with self._lock:
            seq = self._next_seq
            sample = TelemetrySample(seq=seq, reading=reading, process_rss_bytes=process_rss_bytes)
            self._buf[(seq - 1) % self._capacity] = sample
            self._next_seq = seq + 1
            woken = [(fut, loop) for fut, (loop, after) in self._waiters.items() if after < seq]
            for fut, _ in woken:
                del self._waiters[fut]
            self._cond.notify_all()
        for fut, loop in woken:
            # RuntimeError: the waiter's loop is closed; nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake, fut)
        return sample

    def latest(self) -> TelemetrySample | None:
        """The newest sample, or None if the log is empty."""
        with self._lock:
            if self._next_seq == 1:
                return None
            return self._buf[(self._next_seq - 2) % self._capacity]

    def read_from(self, seq: int, max_n: int) -> LogRead:
        """Samples with sequence numbers from `seq` on.

        Args:
            seq: First sequence number wanted (>= 1). If already dropped, reading starts at the
                oldest available one (see `LogRead.missed`); if beyond the newest + 1 (e.g. a
                client of an earlier agent process), it is clamped to newest + 1.
            max_n: Maximum number of samples returned (>= 1; at most `capacity`).
        """
        if seq < 1:
            raise ValueError(f"seq must be >= 1, got {seq}")
        if max_n < 1:
            raise ValueError(f"max_n must be >= 1, got {max_n}")
        with self._lock:
            oldest = max(1, self._next_seq - self._capacity)
            start = min(max(seq, oldest), self._next_seq)
            end = min(start + min(max_n, self._capacity), self._next_seq)
            samples = [self._buf[(s - 1) % self._capacity] for s in range(start, end)]
        return LogRead([s for s in samples if s is not None], end, oldest)

    def wait_beyond_blocking(self, seq: int, timeout_s: float) -> bool:
        """Block the calling thread until a sample with sequence number > `seq` exists.

        Returns:
            True if such a sample exists, False on timeout.
        """
        with self._cond:
            return self._cond.wait_for(lambda: self._next_seq - 1 > seq, timeout=max(timeout_s, 0.0))

    async def wait_beyond(self, seq: int, timeout_s: float) -> bool:
        """Wait on the running event loop until a sample with sequence number > `seq` exists.

        Typical use in a streaming servicer: `read = log.read_from(next_seq, n)`, and when it is
        empty `await log.wait_beyond(read.next_seq - 1, timeout_s)`.

        Args:
            seq: Wait for any sample newer than this.
            timeout_s: Maximum wait in seconds (>= 0).

        Returns:
            True if such a sample exists, False on timeout.
        """
        if not math.isfinite(timeout_s) or timeout_s < 0:
            raise ValueError(f"timeout_s must be finite and >= 0, got {timeout_s}")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._next_seq - 1 > seq:
                return True
            self._waiters[fut] = (loop, seq)
        try:
            await asyncio.wait_for(fut, timeout_s)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.pop(fut, None)

    @property
    def n_waiters(self) -> int:
        """Number of coroutines currently waiting in `wait_beyond`."""
        with self._lock:
            return len(self._waiters)
