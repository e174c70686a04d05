"""Energy and peak memory of a time window (one request), from device counters or power samples.

* Device with a cumulative energy counter (RAPL, NVML total energy, Jetson/simulated integrated
  counters): the counter is read directly at `begin` and `end`; energy = difference
  (method `counter`). No waiting for the sampler.
* Device with power only: the power values of the begin/end reads and of the sampler's samples in
  between are integrated by the trapezoid rule, linearly interpolated at the window edges
  (method `integrated`).
* Neither: energy None, method `unavailable`, with the reason.

Overlapping windows are independent (a token holds all per-window state) and each gets the
*device's* total energy over its own interval: concurrent requests share, and each is charged, the
same joules. Splitting energy between concurrent requests is a policy question left to the caller.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from node_agent.devices.base import Device, Reading, TelemetrySource
from node_agent.telemetry.log import TelemetryLog, TelemetrySample
from node_agent.telemetry.sampler import TelemetrySampler, process_rss_bytes

_SRC = TelemetrySource
EnergyMethod = Literal["counter", "integrated", "unavailable"]


def integrate_power_j(points: Sequence[tuple[float, float]], t0_s: float, t1_s: float) -> float:
    """Energy in joules over [t0_s, t1_s] from `(t_s, power_w)` points by the trapezoid rule.

    Power at the edges is linearly interpolated between the neighbouring points (held constant
    beyond the first/last point). Points need not be sorted; duplicate times keep the last.
    """
    if not points:
        raise ValueError("no power points")
    if t1_s <= t0_s:
        return 0.0
    by_t = dict(sorted(points))
    ts, ps = list(by_t), list(by_t.values())

    def power_at(t_s: float) -> float:
        i = bisect.bisect_left(ts, t_s)
        if i < len(ts) and ts[i] == t_s:
            return ps[i]
        if i == 0:
            return ps[0]
        if i == len(ts):
            return ps[-1]
        frac = (t_s - ts[i - 1]) / (ts[i] - ts[i - 1])
        return ps[i - 1] + frac * (ps[i] - ps[i - 1])

    grid = [(t0_s, power_at(t0_s))] + [(t, p) for t, p in zip(ts, ps, strict=True) if t0_s < t < t1_s]
    grid.append((t1_s, power_at(t1_s)))
    return sum(0.5 * (pa + pb) * (tb - ta) for (ta, pa), (tb, pb) in itertools.pairwise(grid))


@dataclass(frozen=True)
class EnergyWindowToken:
    """State captured by `EnergyMeter.begin` (immutable; one per request)."""

    start: Reading | None
    seq_before: int
    start_rss_bytes: int | None
    t_start_monotonic_s: float
    t_start_unix_s: float
    error: str | None = None


@dataclass(frozen=True)
class EnergyWindow:
    """Energy and peak memory of one window.

    Attributes:
        energy_j: Device energy in the window, J, or None.
        source: Source of `energy_j` (`unavailable` when None).
        method: `counter`, `integrated` or `unavailable`.
        duration_s: Window length, s (monotonic clock of the device's readings).
        t_start_unix_s: Window start, Unix seconds.
        t_end_unix_s: Window end, Unix seconds.
        mean_power_w: energy_j / duration_s, W, or None.
        n_samples: Sampler samples that fell inside the window.
        samples_missed: Samples of the window already dropped from the log at `end` (0 normally).
        peak_mem_bytes: Peak resident set size of the agent process, bytes: max of the RSS read at
            begin, at end and stored with each sample in between.
        peak_mem_source: `psutil`, or `unavailable`.
        peak_device_mem_used_bytes: Peak device memory in use over the same points, bytes.
        device_mem_source: Source of `peak_device_mem_used_bytes`.
        reason: Why energy is unavailable, or a caveat; None otherwise.
    """

    energy_j: float | None
    source: TelemetrySource
    method: EnergyMethod
    duration_s: float
    t_start_unix_s: float
    t_end_unix_s: float
    mean_power_w: float | None
    n_samples: int
    samples_missed: int
    peak_mem_bytes: int | None
    peak_mem_source: TelemetrySource
    peak_device_mem_used_bytes: int | None
    device_mem_source: TelemetrySource
    reason: str | None = None


def _max_or_none(values: Sequence[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


class EnergyMeter:
    """Measures energy windows on `device`.

    Args:
        device: The device (its `read()` is called at begin and end).
        log: The sampler's log (or the sampler itself) for power samples and RSS in between; None
            to use only the begin/end reads.
        rss_fn: Process RSS in bytes at begin/end.
    """

    def __init__(
        self,
        device: Device,
        log: TelemetryLog | TelemetrySampler | None = None,
        *,
        rss_fn: Callable[[], int | None] = process_rss_bytes,
    ) -> None:
        self.device = device
        self.log = log.log if isinstance(log, TelemetrySampler) else log
        self._rss_fn = rss_fn

    def _read(self) -> tuple[Reading | None, str | None]:
        try:
            return self.device.read(), None
        except Exception as exc:  # a failed read makes the window unavailable, not the request
            return None, f"device read failed: {type(exc).__name__}: {exc}"

    def begin(self) -> EnergyWindowToken:
        """Start a window now (thread-safe; any number may be open)."""
        seq_before = self.log.latest_seq if self.log is not None else 0
        start, error = self._read()
        t0_s = start.t_monotonic_s if start is not None else self._fallback_clock()
        t0_unix_s = start.t_unix_s if start is not None else time.time()
        return EnergyWindowToken(start, seq_before, self._rss_fn(), t0_s, t0_unix_s, error)

    def _fallback_clock(self) -> float:
        latest = self.log.latest() if self.log is not None else None
        return latest.reading.t_monotonic_s if latest is not None else time.monotonic()

    def _samples(self, token: EnergyWindowToken) -> tuple[list[TelemetrySample], int]:
        if self.log is None:
            return [], 0
        first = max(token.seq_before, 1)
        got = self.log.read_from(first, self.log.capacity)
        return got.samples, got.missed(token.seq_before + 1) if got.samples else 0

    def end(self, token: EnergyWindowToken) -> EnergyWindow:
        """Close the window of `token` and compute its energy and peak memory."""
        stop, error = self._read()
        rss_end = self._rss_fn()
        start = token.start
        t0_s = token.t_start_monotonic_s
        t1_s = stop.t_monotonic_s if stop is not None else self._fallback_clock()
        samples, missed = self._samples(token)
        inside = [s for s in samples if t0_s <= s.reading.t_monotonic_s <= t1_s]
        edge_reads = [r for r in (start, stop) if r is not None]
        energy_j, source, method = None, _SRC.UNAVAILABLE, "unavailable"
        reason = token.error or error
        if start is not None and stop is not None and start.energy_j is not None and stop.energy_j is not None:
            energy_j, source, method = stop.energy_j - start.energy_j, stop.energy_source, "counter"
            reason = None
        else:
            points = [(r.t_monotonic_s, r.power_w, r.power_source) for r in edge_reads]
            points += [(s.reading.t_monotonic_s, s.reading.power_w, s.reading.power_source) for s in samples]
            valid = [(t, p, src) for t, p, src in points if p is not None]
            if valid:
                energy_j = integrate_power_j([(t, p) for t, p, _ in valid], t0_s, t1_s)
                source, method = valid[-1][2], "integrated"
                covered = min(t for t, _, _ in valid) <= t0_s and max(t for t, _, _ in valid) >= t1_s
                reason = None if covered else "power held constant beyond the first/last sample"
            elif reason is None:
                reason = "device measures neither energy nor power"
        duration_s = max(t1_s - t0_s, 0.0)
        rss = [token.start_rss_bytes, rss_end] + [s.process_rss_bytes for s in inside]
        peak_rss = _max_or_none(rss)
        mem_reads = edge_reads + [s.reading for s in inside]
        peak_dev = _max_or_none([r.mem_used_bytes for r in mem_reads])
        dev_src = next((r.mem_source for r in mem_reads if r.mem_used_bytes is not None), _SRC.UNAVAILABLE)
        return EnergyWindow(
            energy_j=energy_j,
            source=source,
            method=method,
            duration_s=duration_s,
            t_start_unix_s=token.t_start_unix_s,
            t_end_unix_s=stop.t_unix_s if stop is not None else time.time(),
            mean_power_w=energy_j / duration_s if energy_j is not None and duration_s > 0 else None,
            n_samples=len(inside),
            samples_missed=missed,
            peak_mem_bytes=peak_rss,
            peak_mem_source=_SRC.PSUTIL if peak_rss is not None else _SRC.UNAVAILABLE,
            peak_device_mem_used_bytes=peak_dev,
            device_mem_source=dev_src,
            reason=reason,
        )
