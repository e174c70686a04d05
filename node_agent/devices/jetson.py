"""NVIDIA Jetson module: INA3221 rails for power, `/proc/meminfo` for memory, sysfs for GPU load/clock.

Total power follows the per-module rule of HARDWARE.md §1.3 (`VDD_IN` / `POM_5V_IN` where present,
the AGX Orin and AGX Xavier sums otherwise); the rule used is reported in
`info().notes["total_power_rule"]`. The INA3221 has no energy counter: energy is integrated from the
total power at every read (trapezoid rule), cumulative since the device was opened. Every value from
this backend (rails, memory, GPU load and clock, all read from the Jetson's sysfs/procfs) carries the
source label `jetson-ina3221`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from node_agent.devices.base import (
    Device,
    DeviceInfo,
    DeviceUnavailable,
    Opener,
    PowerIntegrator,
    Reading,
    TelemetrySource,
    default_opener,
)
from node_agent.devices.ina3221 import scan, total_rule

_SRC = TelemetrySource
_GPU_LOAD_FILES = ("sys/devices/platform/gpu.0/load", "sys/devices/gpu.0/load")  # per-mille
_GPU_OF_NAMES = {"gp10b", "gv11b", "ga10b", "gb10b", "gpu"}


def parse_meminfo(text: str) -> tuple[int, int, str]:
    """Memory from `/proc/meminfo` text (values in kB).

    Returns:
        `(used_bytes, total_bytes, formula)`: used = MemTotal - MemAvailable where the kernel gives
        MemAvailable, else MemTotal - (MemFree + Buffers + Cached + SReclaimable) (the jtop formula).
    """
    kb: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            kb[key.strip()] = int(parts[0])
    total = kb["MemTotal"]
    if "MemAvailable" in kb:
        return (total - kb["MemAvailable"]) * 1024, total * 1024, "MemTotal - MemAvailable"
    free = sum(kb.get(k, 0) for k in ("MemFree", "Buffers", "Cached", "SReclaimable"))
    return (total - free) * 1024, total * 1024, "MemTotal - (MemFree + Buffers + Cached + SReclaimable)"


class JetsonDevice(Device):
    """A Jetson module measured through its INA3221 sensors.

    Args:
        sysfs_root: Root holding `sys/` and `proc/` (tests pass a fake tree).
        opener: File opener (tests inject read errors).
        monotonic: Clock used for energy integration, seconds (tests inject a fake clock).

    Raises:
        DeviceUnavailable: No INA3221 sensor or no readable rail found.
    """

    def __init__(
        self,
        *,
        sysfs_root: Path = Path("/"),
        opener: Opener = default_opener,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._root, self._opener, self._monotonic = sysfs_root, opener, monotonic
        self._lock = threading.Lock()
        self._scan = scan(sysfs_root, opener)
        if not self._scan.chips:
            raise DeviceUnavailable(f"no INA3221 sensor under {sysfs_root / 'sys/bus/i2c'}")
        if not self._scan.rails:
            raise DeviceUnavailable(f"INA3221 found but no readable rail: {self._scan.unavailable}")
        labels = {r.label for r in self._scan.rails}
        failed = {key.split("/", 1)[1] for key in self._scan.unavailable}
        self._rule = total_rule(labels, failed)
        self._integrator = PowerIntegrator()
        self._gpu_load_file = next((p for f in _GPU_LOAD_FILES if (p := sysfs_root / f).is_file()), None)
        self._gpu_freq_file = self._find_gpu_devfreq()
        self._mem_reason, self._mem_formula, self._mem_total_bytes = "", "", None
        try:
            _, self._mem_total_bytes, self._mem_formula = parse_meminfo(self._read("proc/meminfo"))
        except (OSError, KeyError, ValueError) as exc:
            self._mem_reason = f"/proc/meminfo unreadable: {exc}"
        self._name = self._model_name()
        self.read()  # first integration point: energy counts from here

    def _read(self, rel: str | Path) -> str:
        with self._opener(self._root / rel) as f:
            return f.read()

    def _model_name(self) -> str:
        for rel in ("proc/device-tree/model", "sys/firmware/devicetree/base/model"):
            try:
                return self._read(rel).strip("\x00\n ")
            except OSError:
                continue
        return f"Jetson (INA3221 rails: {', '.join(r.label for r in self._scan.rails)})"

    def _find_gpu_devfreq(self) -> Path | None:
        for dev in sorted((self._root / "sys/class/devfreq").glob("*")):
            try:
                of_name = self._read(dev / "device/of_node/name").strip("\x00\n ")
            except OSError:
                continue
            if of_name in _GPU_OF_NAMES and (dev / "cur_freq").is_file():
                return dev / "cur_freq"
        return None

    def info(self) -> DeviceInfo:
        power_src = _SRC.UNAVAILABLE if self._rule.reason else _SRC.JETSON_INA3221
        unavailable: dict[str, str] = {}
        if self._rule.reason:
            unavailable["power"] = unavailable["energy"] = self._rule.reason
        if self._mem_reason:
            unavailable["mem"] = self._mem_reason
        if self._gpu_load_file is None:
            unavailable["util"] = "no gpu.0/load file (sys/devices/platform/gpu.0 or sys/devices/gpu.0)"
        if self._gpu_freq_file is None:
            unavailable["clock"] = "no GPU devfreq node (sys/class/devfreq/*/device/of_node/name)"
        notes = {
            "total_power_rule": self._rule.description,
            "energy": "trapezoid integral of total power over reads",
            "mem_used": self._mem_formula,
            "util": "GPU load (gpu.0/load per-mille / 10)",
            "clock": "GPU devfreq cur_freq",
            "rails": ", ".join(f"{r.chip}/{r.label}" for r in self._scan.rails),
        }
        for key, why in self._scan.unavailable.items():
            notes[f"unavailable_channel {key}"] = why
        return DeviceInfo(
            kind="jetson",
            name=self._name,
            mem_total_bytes=self._mem_total_bytes,
            sources={
                "power": power_src,
                "energy": power_src,
                "mem": _SRC.UNAVAILABLE if self._mem_reason else _SRC.JETSON_INA3221,
                "util": _SRC.UNAVAILABLE if self._gpu_load_file is None else _SRC.JETSON_INA3221,
                "clock": _SRC.UNAVAILABLE if self._gpu_freq_file is None else _SRC.JETSON_INA3221,
            },
            unavailable=unavailable,
            native_update_period_s=self._scan.update_period_s,
            notes=notes,
        )

    def _read_number(self, path: Path | None) -> float | None:
        if path is None:
            return None
        try:
            return float(self._read(path).split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def read(self) -> Reading:
        """Read every rail, total power, integrated energy, memory, GPU load and GPU clock.

        A rail whose read fails is missing from `rails_w`; if the total rule needs it, `power_w` is
        None for this read and the energy integral bridges the gap linearly.
        """
        with self._lock:
            t0_s = self._monotonic()
            rails_w: dict[str, float] = {}
            for rail in self._scan.rails:
                try:
                    rails_w[rail.label] = rail.read_w(self._opener)
                except (OSError, ValueError):
                    continue
            t_mono_s = 0.5 * (t0_s + self._monotonic())
            t_unix_s = time.time()
            power_w = None
            if not self._rule.reason and all(r in rails_w for r in self._rule.rails):
                power_w = sum(rails_w[r] for r in self._rule.rails)
            energy_j = None if self._rule.reason else self._integrator.add(t_mono_s, power_w)
        used = total = None
        if not self._mem_reason:
            try:
                used, total, _ = parse_meminfo(self._read("proc/meminfo"))
            except (OSError, KeyError, ValueError):
                used = total = None
        load = self._read_number(self._gpu_load_file)
        freq_hz = self._read_number(self._gpu_freq_file)
        jet = _SRC.JETSON_INA3221

        def src(value: object) -> TelemetrySource:
            return jet if value is not None else _SRC.UNAVAILABLE

        util_pct = None if load is None else min(max(load / 10.0, 0.0), 100.0)
        return Reading(
            t_unix_s=t_unix_s,
            t_monotonic_s=t_mono_s,
            power_w=power_w,
            power_source=src(power_w),
            energy_j=energy_j,
            energy_source=src(energy_j),
            mem_used_bytes=used,
            mem_total_bytes=total,
            mem_source=src(used),
            util_pct=util_pct,
            util_source=src(util_pct),
            clock_mhz=None if freq_hz is None else freq_hz / 1e6,
            clock_source=src(freq_hz),
            rails_w=rails_w,
        )
