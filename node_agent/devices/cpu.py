"""CPU host device: psutil for utilisation, memory and clock; RAPL powercap for power and energy.

Without RAPL (most VMs, non-x86 hosts, or non-root since Linux 5.10) power and energy are reported
`unavailable` with the reason; nothing is estimated.
"""

from __future__ import annotations

import platform
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from node_agent.devices.base import (
    DeltaTracker,
    Device,
    DeviceInfo,
    DeviceUnavailable,
    Opener,
    Reading,
    TelemetrySource,
    default_opener,
)
from node_agent.devices.rapl import RAPL_UPDATE_PERIOD_S, RaplReader

_SRC = TelemetrySource


def _cpu_model_name(sysfs_root: Path) -> str:
    """CPU model from `<root>/proc/cpuinfo` (`model name`), else the platform's processor string."""
    try:
        with open(sysfs_root / "proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _busy_total_s(times: Any) -> tuple[float, float]:
    """Busy and total CPU seconds from `psutil.cpu_times()`; idle includes iowait, guest time is
    already contained in user/nice and is not counted twice."""
    fields = times._asdict()
    total_s = sum(fields.values()) - fields.get("guest", 0.0) - fields.get("guest_nice", 0.0)
    idle_s = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
    return total_s - idle_s, total_s


class CpuDevice(Device):
    """The host CPU and system memory.

    Args:
        sysfs_root: Root of the file system holding `sys/` and `proc/` (tests pass a fake tree).
        rapl_opener: File opener for the RAPL reader (tests inject `PermissionError`).
        min_power_interval_s: Shortest interval in seconds over which power is derived from RAPL
            energy deltas; closer reads repeat the previous value (RAPL updates every ~1 ms).
        min_util_interval_s: Same for CPU utilisation (kernel CPU times tick at 10 ms). CPU times,
            system memory and the clock are read once per such interval and repeated by reads in
            between (this keeps a 100 Hz sampler cheap; RAPL is read on every call).
        monotonic: Clock in seconds for rates (tests inject a fake clock).
    """

    def __init__(
        self,
        *,
        sysfs_root: Path = Path("/"),
        rapl_opener: Opener = default_opener,
        min_power_interval_s: float = 0.02,
        min_util_interval_s: float = 0.1,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._rapl: RaplReader | None = None
        self._rapl_reason = ""
        try:
            self._rapl = RaplReader(sysfs_root, rapl_opener)
        except DeviceUnavailable as exc:
            self._rapl_reason = str(exc)
        self._power_delta = DeltaTracker(min_power_interval_s)
        self._util_delta = DeltaTracker(min_util_interval_s)
        self._name = _cpu_model_name(sysfs_root)
        self._mem_total_bytes = int(psutil.virtual_memory().total)
        self._clock_reason = ""
        try:
            freq = psutil.cpu_freq()
            if freq is None or not freq.current:
                self._clock_reason = "psutil.cpu_freq() reports no current frequency"
        except (OSError, NotImplementedError, RuntimeError) as exc:
            self._clock_reason = f"psutil.cpu_freq() failed: {exc}"
        self._util_pct: float | None = None
        self._clock_mhz: float | None = None
        self._mem_used_bytes = 0
        with self._lock:
            self._update_counters(self._monotonic())

    def _update_counters(self, t_mono_s: float) -> tuple[float | None, float | None, float | None, float | None]:
        """Read RAPL; CPU times, memory and clock when the util interval is due (lock held).

        Sets `_util_pct` (over the latest full interval), `_mem_*_bytes` and `_clock_mhz`.

        Returns:
            `(energy_j, power_w, dram_energy_j, dram_power_w)`, each None where unavailable.
        """
        energy_j = dram_j = power_w = dram_w = None
        if self._rapl is not None:
            energy_j, dram_j = self._rapl.read_j()
            delta = self._power_delta.update(t_mono_s, (energy_j, dram_j or 0.0))
            if delta is not None:
                dt_s, (de_j, dd_j) = delta
                power_w = de_j / dt_s
                dram_w = dd_j / dt_s if dram_j is not None else None
        if self._util_delta.due(t_mono_s):  # /proc/stat, meminfo, clock: once per util interval
            mem = psutil.virtual_memory()
            self._mem_used_bytes, self._mem_total_bytes = int(mem.total - mem.available), int(mem.total)
            util = self._util_delta.update(t_mono_s, _busy_total_s(psutil.cpu_times()))
            if util is not None and util[1][1] > 0:
                self._util_pct = min(max(100.0 * util[1][0] / util[1][1], 0.0), 100.0)
            if not self._clock_reason:
                freq = psutil.cpu_freq()
                self._clock_mhz = float(freq.current) if freq is not None and freq.current else None
        return energy_j, power_w, dram_j, dram_w

    def info(self) -> DeviceInfo:
        rapl_src = _SRC.RAPL if self._rapl is not None else _SRC.UNAVAILABLE
        clock_src = _SRC.UNAVAILABLE if self._clock_reason else _SRC.PSUTIL
        unavailable: dict[str, str] = {}
        notes = {
            "mem_used": "psutil: total - available, refreshed every min_util_interval_s",
            "util": "psutil.cpu_times deltas over all CPUs, refreshed every min_util_interval_s",
            "clock": "psutil.cpu_freq().current, refreshed every min_util_interval_s",
        }
        if self._rapl is None:
            unavailable["power"] = unavailable["energy"] = self._rapl_reason
        else:
            notes["power"] = "RAPL package energy delta / time, summed over packages"
            notes["rapl_packages"] = ",".join(z.name for z in self._rapl.packages)
            notes["dram"] = self._rapl.dram_unavailable_reason or "RAPL dram zone in extra"
        if self._clock_reason:
            unavailable["clock"] = self._clock_reason
        return DeviceInfo(
            kind="cpu",
            name=self._name,
            mem_total_bytes=self._mem_total_bytes,
            sources={
                "power": rapl_src,
                "energy": rapl_src,
                "mem": _SRC.PSUTIL,
                "util": _SRC.PSUTIL,
                "clock": clock_src,
            },
            unavailable=unavailable,
            native_update_period_s=RAPL_UPDATE_PERIOD_S if self._rapl is not None else None,
            notes=notes,
        )

    def read(self) -> Reading:
        """Read RAPL counters, CPU utilisation, memory and clock once.

        Power is None (source `unavailable`) on the reads before the first full
        `min_power_interval_s` after opening, and always when RAPL is absent.
        """
        with self._lock:
            t_mono_s = self._monotonic()
            t_unix_s = time.time()
            energy_j, power_w, dram_j, dram_w = self._update_counters(t_mono_s)
            util_pct, clock_mhz = self._util_pct, self._clock_mhz
            mem_used_bytes, mem_total_bytes = self._mem_used_bytes, self._mem_total_bytes
        extra: dict[str, float] = {}
        if dram_j is not None:
            extra["dram_energy_j"] = dram_j
            if dram_w is not None:
                extra["dram_power_w"] = dram_w
        return Reading(
            t_unix_s=t_unix_s,
            t_monotonic_s=t_mono_s,
            power_w=power_w,
            power_source=_SRC.RAPL if power_w is not None else _SRC.UNAVAILABLE,
            energy_j=energy_j,
            energy_source=_SRC.RAPL if energy_j is not None else _SRC.UNAVAILABLE,
            mem_used_bytes=mem_used_bytes,
            mem_total_bytes=mem_total_bytes,
            mem_source=_SRC.PSUTIL,
            util_pct=util_pct,
            util_source=_SRC.PSUTIL if util_pct is not None else _SRC.UNAVAILABLE,
            clock_mhz=clock_mhz,
            clock_source=_SRC.PSUTIL if clock_mhz is not None else _SRC.UNAVAILABLE,
            extra=extra,
        )
