"""The device abstraction of the node agent's measurement layer.

One `Device` per measured box (a CPU host, an NVIDIA GPU, a Jetson module, or a simulated device).
`Device.read()` returns one `Reading`: every value in it carries the `TelemetrySource` it came from,
and a value the hardware cannot give is `None` with source `unavailable`, never a made-up number
(DESIGN.md, "Measured, or labelled").
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import IO, Literal

DeviceKind = Literal["cpu", "nvidia", "jetson", "simulated", "none"]

# Opens a sysfs/procfs file for text reading; injectable so tests can raise PermissionError or
# read errors (they run as root, where chmod cannot produce EACCES).
Opener = Callable[[Path], IO[str]]


def default_opener(path: Path) -> IO[str]:
    """Open a sysfs/procfs file for reading as text (the caller closes it)."""
    return open(path, encoding="ascii", errors="replace")


# Metric names used as keys in `DeviceInfo.sources` / `DeviceInfo.unavailable`.
METRICS: tuple[str, ...] = ("power", "energy", "mem", "util", "clock")


class TelemetrySource(str, Enum):
    """Where a telemetry value came from (the house list of labels)."""

    NVML = "nvml"
    JETSON_INA3221 = "jetson-ina3221"
    RAPL = "rapl"
    PSUTIL = "psutil"
    MODELED = "modeled"
    UNAVAILABLE = "unavailable"

    def __str__(self) -> str:
        return self.value


class DeviceError(Exception):
    """A device backend failed (vendor errors are mapped onto this)."""


class DeviceUnavailable(DeviceError):
    """The requested device is not present or cannot be opened; the message says why."""


@dataclass(frozen=True)
class Reading:
    """One instantaneous read of one device.

    Invariant (checked at construction): a value is None exactly when its source is `unavailable`.

    Attributes:
        t_unix_s: Wall-clock time of the read, seconds since the Unix epoch.
        t_monotonic_s: `time.monotonic()` at the read, seconds; use this for intervals.
        power_w: Total power of the device in watts, or None when not measurable.
        power_source: Source of `power_w` (`unavailable` when it is None).
        energy_j: Cumulative energy in joules since the device object was opened, monotonically
            non-decreasing and wrap-corrected; None when the device has no energy counter.
        energy_source: Source of `energy_j`.
        mem_used_bytes: Memory in use on the device in bytes (system RAM for CPU/Jetson, GPU memory
            for NVIDIA), or None.
        mem_total_bytes: Total memory of the device in bytes, or None.
        mem_source: Source of both memory values.
        util_pct: Utilisation of the device's main compute unit in percent (0..100), or None.
        util_source: Source of `util_pct`.
        clock_mhz: Main compute clock in MHz (CPU current frequency, GPU SM clock), or None.
        clock_source: Source of `clock_mhz`.
        rails_w: Per-rail power in watts (Jetson INA3221 rails), keyed by rail label.
        extra: Further named values; each key carries its unit (e.g. `dram_power_w`).
    """

    t_unix_s: float
    t_monotonic_s: float
    power_w: float | None
    power_source: TelemetrySource
    energy_j: float | None
    energy_source: TelemetrySource
    mem_used_bytes: int | None
    mem_total_bytes: int | None
    mem_source: TelemetrySource
    util_pct: float | None = None
    util_source: TelemetrySource = TelemetrySource.UNAVAILABLE
    clock_mhz: float | None = None
    clock_source: TelemetrySource = TelemetrySource.UNAVAILABLE
    rails_w: Mapping[str, float] = field(default_factory=dict)
    extra: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for value, source, name in (
            (self.power_w, self.power_source, "power"),
            (self.energy_j, self.energy_source, "energy"),
            (self.mem_used_bytes, self.mem_source, "mem"),
            (self.util_pct, self.util_source, "util"),
            (self.clock_mhz, self.clock_source, "clock"),
        ):
            if (value is None) != (source is TelemetrySource.UNAVAILABLE):
                raise ValueError(f"{name}: a value needs a measuring source, None needs 'unavailable'")


@dataclass(frozen=True)
class DeviceInfo:
    """Static description of an opened device.

    Attributes:
        kind: Backend kind: `cpu`, `nvidia`, `jetson`, `simulated` or `none`.
        name: Model string (CPU model, GPU name, Jetson module).
        mem_total_bytes: Total device memory in bytes, or None.
        sources: Metric name (`power`, `energy`, `mem`, `util`, `clock`) -> source that will fill it.
        unavailable: Metric name -> one-line reason, for every metric whose source is `unavailable`.
        native_update_period_s: How often the hardware itself refreshes its power/energy values, in
            seconds, where known (reading faster returns repeated values); None if unknown.
        notes: Further facts about how values are derived (e.g. Jetson `total_power_rule`).
    """

    kind: DeviceKind
    name: str
    mem_total_bytes: int | None
    sources: Mapping[str, TelemetrySource]
    unavailable: Mapping[str, str] = field(default_factory=dict)
    native_update_period_s: float | None = None
    notes: Mapping[str, str] = field(default_factory=dict)


class Device(ABC):
    """A measured device. Implementations are thread-safe: the sampler thread and request handlers
    may call `read()` concurrently."""

    @abstractmethod
    def info(self) -> DeviceInfo:
        """Static description of the device (cheap; no hardware access)."""

    @abstractmethod
    def read(self) -> Reading:
        """Read all metrics once.

        Raises:
            DeviceError: The device failed as a whole (single unavailable metrics are reported as None).
        """

    def close(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release vendor resources. Idempotent."""

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EmptyDevice(Device):
    """Stand-in when no device could be opened: every metric is `unavailable`, with the reason."""

    def __init__(self, reason: str) -> None:
        self._reason = reason

    def info(self) -> DeviceInfo:
        return DeviceInfo(
            kind="none",
            name="none",
            mem_total_bytes=None,
            sources={m: TelemetrySource.UNAVAILABLE for m in METRICS},
            unavailable={m: self._reason for m in METRICS},
        )

    def read(self) -> Reading:
        return Reading(
            t_unix_s=time.time(),
            t_monotonic_s=time.monotonic(),
            power_w=None,
            power_source=TelemetrySource.UNAVAILABLE,
            energy_j=None,
            energy_source=TelemetrySource.UNAVAILABLE,
            mem_used_bytes=None,
            mem_total_bytes=None,
            mem_source=TelemetrySource.UNAVAILABLE,
        )


class PowerIntegrator:
    """Cumulative energy from power samples by the trapezoid rule (thread-safe).

    Used by backends that measure power but have no hardware energy counter (Jetson INA3221,
    simulated). A sample with `power_w=None` is skipped; the next valid sample is joined to the last
    valid one, so a gap is bridged linearly.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[float, float] | None = None
        self._energy_j = 0.0

    def add(self, t_monotonic_s: float, power_w: float | None) -> float:
        """Add a sample and return the cumulative energy in joules since the first sample."""
        with self._lock:
            if power_w is not None:
                if self._last is not None:
                    t_prev, p_prev = self._last
                    dt_s = t_monotonic_s - t_prev
                    if dt_s > 0:
                        self._energy_j += 0.5 * (p_prev + power_w) * dt_s
                if self._last is None or t_monotonic_s >= self._last[0]:
                    self._last = (t_monotonic_s, power_w)
            return self._energy_j


class DeltaTracker:
    """Differences of cumulative counters between reads, with a minimum interval.

    Used to turn counters into rates (RAPL energy -> power, CPU times -> utilisation). A read closer
    than `min_interval_s` to the reference point returns the previous result instead of a noisy
    quotient of tiny differences; the reference point moves only after a full interval. Not
    thread-safe on its own: callers hold their device lock.
    """

    def __init__(self, min_interval_s: float) -> None:
        self._min_interval_s = min_interval_s
        self._ref: tuple[float, tuple[float, ...]] | None = None
        self._last: tuple[float, tuple[float, ...]] | None = None

    def due(self, t_s: float) -> bool:
        """Whether a read at `t_s` would complete an interval (callers may skip reading otherwise)."""
        return self._ref is None or t_s - self._ref[0] >= self._min_interval_s

    def last(self) -> tuple[float, tuple[float, ...]] | None:
        """The result of the latest full interval, or None."""
        return self._last

    def update(self, t_s: float, values: tuple[float, ...]) -> tuple[float, tuple[float, ...]] | None:
        """Feed counter `values` at time `t_s` (seconds).

        Returns:
            `(dt_s, deltas)` over the latest full interval, or None before the first full interval.
        """
        if self._ref is None:
            self._ref = (t_s, values)
            return None
        dt_s = t_s - self._ref[0]
        if dt_s >= self._min_interval_s:
            deltas = tuple(v - r for v, r in zip(values, self._ref[1], strict=True))
            self._last = (dt_s, deltas)
            self._ref = (t_s, values)
        return self._last
