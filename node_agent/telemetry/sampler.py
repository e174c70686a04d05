"""Periodic sampling of a device into a `TelemetryLog` on a daemon thread.

Ticks are scheduled on a monotonic grid `t_start + k * period` (no drift from the time the read
itself takes); a read that overruns one or more ticks skips them (counted in `overruns`) rather than
bursting. A failing read is counted and logged (the first `max_logged_errors` times), never fatal.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from node_agent.devices.base import Device
from node_agent.telemetry.log import TelemetryLog

_log = logging.getLogger(__name__)

MIN_HZ = 1.0
MAX_HZ = 100.0


_PROCESS: psutil.Process | None = None


def process_rss_bytes() -> int | None:
    """Resident set size of this process in bytes (psutil), or None if it cannot be read."""
    global _PROCESS
    try:
        if _PROCESS is None or _PROCESS.pid != os.getpid():  # reuse the handle; new one after fork
            _PROCESS = psutil.Process()
        return int(_PROCESS.memory_info().rss)
    except (psutil.Error, OSError):
        return None


@dataclass(frozen=True)
class SamplerStats:
    """What the sampler achieved so far.

    Attributes:
        samples: Successful reads appended to the log.
        errors: Failed iterations (device read or append raised).
        overruns: Ticks skipped because an iteration took longer than the period.
        period_s: Requested period, s.
        mean_period_s: Mean interval between successive tick starts, s (None before two ticks).
        min_period_s: Shortest such interval, s.
        max_period_s: Longest such interval, s.
        std_period_s: Standard deviation of the interval, s.
        thread_cpu_s: CPU time consumed by the sampler thread, s (`time.thread_time`).
        last_error: Text of the most recent error, or None.
    """

    samples: int
    errors: int
    overruns: int
    period_s: float
    mean_period_s: float | None
    min_period_s: float | None
    max_period_s: float | None
    std_period_s: float | None
    thread_cpu_s: float
    last_error: str | None


class TelemetrySampler:
    """Reads `device` at `hz` and appends each reading to `log`.

    Args:
        device: The device to read.
        hz: Sampling rate in Hz, 1..100.
        log: Destination log.
        rss_fn: Returns the process RSS in bytes stored with each sample (None to skip).
        max_logged_errors: How many read errors are written to the Python log (all are counted).
    """

    def __init__(
        self,
        device: Device,
        hz: float,
        log: TelemetryLog,
        *,
        rss_fn: Callable[[], int | None] | None = process_rss_bytes,
        max_logged_errors: int = 10,
    ) -> None:
        if not isinstance(hz, (int, float)) or not math.isfinite(hz) or not MIN_HZ <= hz <= MAX_HZ:
            raise ValueError(f"hz must be within [{MIN_HZ}, {MAX_HZ}], got {hz!r}")
        self.device, self.log, self.hz = device, log, float(hz)
        self.period_s = 1.0 / self.hz
        self._rss_fn = rss_fn
        self._max_logged_errors = max_logged_errors
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stats_lock = threading.Lock()
        self._samples = self._errors = self._overruns = 0
        self._n_periods = 0
        self._mean_s = self._m2 = 0.0
        self._min_s = math.inf
        self._max_s = 0.0
        self._thread_cpu_s = 0.0
        self._last_error: str | None = None

    @property
    def running(self) -> bool:
        """Whether the sampling thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the daemon thread (once)."""
        if self._thread is not None:
            raise RuntimeError("sampler already started")
        self._thread = threading.Thread(target=self._run, name="telemetry-sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and join it (idempotent)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _record_period(self, dt_s: float) -> None:
        with self._stats_lock:
            self._n_periods += 1
            delta = dt_s - self._mean_s
            self._mean_s += delta / self._n_periods
            self._m2 += delta * (dt_s - self._mean_s)
            self._min_s = min(self._min_s, dt_s)
            self._max_s = max(self._max_s, dt_s)

    def _sample_once(self) -> None:
        try:
            reading = self.device.read()
            rss = self._rss_fn() if self._rss_fn is not None else None
            self.log.append(reading, rss)
        except Exception as exc:  # a failing read must never kill the sampler
            with self._stats_lock:
                self._errors += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                n = self._errors
            if n <= self._max_logged_errors:
                _log.warning("telemetry read failed (%d): %s", n, self._last_error)
                if n == self._max_logged_errors:
                    _log.warning("further telemetry read errors are counted, not logged")
            return
        with self._stats_lock:
            self._samples += 1

    def _run(self) -> None:
        cpu0_s = time.thread_time()
        t_start_s = time.monotonic()
        tick = 0
        last_tick_s: float | None = None
        while not self._stop.is_set():
            now_s = time.monotonic()
            if last_tick_s is not None:
                self._record_period(now_s - last_tick_s)
            last_tick_s = now_s
            self._sample_once()
            tick += 1
            after_s = time.monotonic()
            due = math.floor((after_s - t_start_s) / self.period_s) + 1
            if due > tick:  # overran: skip the missed ticks instead of bursting
                with self._stats_lock:
                    self._overruns += due - tick
                tick = due
            with self._stats_lock:
                self._thread_cpu_s = time.thread_time() - cpu0_s
            self._stop.wait(max(t_start_s + tick * self.period_s - after_s, 0.0))

    def stats(self) -> SamplerStats:
        """A snapshot of the sampler's counters and achieved period."""
        with self._stats_lock:
            n = self._n_periods
            return SamplerStats(
                samples=self._samples,
                errors=self._errors,
                overruns=self._overruns,
                period_s=self.period_s,
                mean_period_s=self._mean_s if n else None,
                min_period_s=self._min_s if n else None,
                max_period_s=self._max_s if n else None,
                std_period_s=math.sqrt(self._m2 / n) if n else None,
                thread_cpu_s=self._thread_cpu_s,
                last_error=self._last_error,
            )

    @property
    def actual_period_s(self) -> float | None:
        """Mean achieved interval between samples, s (None before two ticks)."""
        return self.stats().mean_period_s
