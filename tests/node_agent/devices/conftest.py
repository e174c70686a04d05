"""Fake sysfs trees (HARDWARE.md §1.5, §2) and a fake `pynvml` module for the device tests."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

import pytest

from node_agent.devices.base import default_opener


def write(path: Path, value: object) -> Path:
    """One value per file with a trailing newline, as sysfs does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{value}\n")
    return path


def link(link_path: Path, target: Path) -> None:
    link_path.parent.mkdir(parents=True, exist_ok=True)
    link_path.symlink_to(os.path.relpath(target, link_path.parent), target_is_directory=True)


def _i2c_device(root: Path, bus_addr: str, driver: str) -> Path:
    """Real device dir under sys/devices plus the driver and bus symlinks pointing at it."""
    bus = bus_addr.split("-")[0]
    real = root / f"sys/devices/platform/bus@0/c240000.i2c/i2c-{bus}/{bus_addr}"
    write(real / "name", driver)
    link(root / f"sys/bus/i2c/drivers/{driver}/{bus_addr}", real)
    link(root / f"sys/bus/i2c/devices/{bus_addr}", real)
    return real


def hwmon_chip(
    root: Path,
    bus_addr: str,
    hwmon_n: int,
    channels: dict[int, tuple[str, int, int]],
    *,
    update_interval_ms: int | None = 8,
) -> Path:
    """JetPack 5+ hwmon layout: channels from 1, in<N>_input mV, curr<N>_input mA, ch7 shunt sum."""
    d = _i2c_device(root, bus_addr, "ina3221") / f"hwmon/hwmon{hwmon_n}"
    write(d / "name", "ina3221")
    for n, (label, mv, ma) in channels.items():
        write(d / f"in{n}_label", label)
        write(d / f"in{n}_input", mv)
        write(d / f"curr{n}_input", ma)
        write(d / f"in{n + 3}_input", ma * 5)  # shunt voltage, µV: no label, not a rail
        write(d / f"curr{n}_max", 5000)
        write(d / f"curr{n}_crit", 6000)
        write(d / f"curr{n}_max_alarm", 0)
    write(d / "in7_label", "sum of shunt voltages")
    write(d / "in7_input", 1234)
    write(d / "curr4_input", 999)
    if update_interval_ms is not None:
        write(d / "update_interval", update_interval_ms)
    write(d / "samples", 1)
    return d


def iio_chip(root: Path, bus_addr: str, iio_n: int, channels: dict[int, tuple[str, int, int, int]]) -> Path:
    """JetPack 4 iio layout: channels from 0, rail_name_N, voltage mV, current mA, power mW."""
    d = _i2c_device(root, bus_addr, "ina3221x") / f"iio:device{iio_n}"
    write(d / "name", "ina3221x")
    for n, (label, mv, ma, mw) in channels.items():
        write(d / f"rail_name_{n}", label)
        write(d / f"in_voltage{n}_input", mv)
        write(d / f"in_current{n}_input", ma)
        write(d / f"in_power{n}_input", mw)
        write(d / f"polling_delay_{n}", "0 ms")
        write(d / f"warn_current_limit_{n}", 5000)
    return d


def meminfo(root: Path, *, total_kb: int = 7_802_880, available_kb: int | None = 3_500_000) -> None:
    lines = [f"MemTotal:       {total_kb} kB", "MemFree:         1000000 kB", "Buffers:           50000 kB"]
    if available_kb is not None:
        lines.append(f"MemAvailable:   {available_kb} kB")
    lines += ["Cached:          2000000 kB", "SReclaimable:     100000 kB", "NvMapMemUsed:     20000 kB"]
    write(root / "proc/meminfo", "\n".join(lines))


def failing_opener(failing: Iterable[Path], exc: Callable[[Path], OSError]) -> Callable[[Path], IO[str]]:
    """An opener that raises `exc(path)` for the given files (compared by real path, so symlinked
    spellings match) and opens everything else."""
    bad = {Path(p).resolve() for p in failing}

    def opener(path: Path) -> IO[str]:
        if Path(path).resolve() in bad:
            raise exc(path)
        return default_opener(path)

    return opener


def enodata(path: Path) -> OSError:
    return OSError(errno.ENODATA, "No data available", str(path))


# -- fake pynvml -----------------------------------------------------------------------------------
class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        self.value = value
        super().__init__(f"NVML error {value}")


NOT_SUPPORTED = 3
GPU_IS_LOST = 15
LIBRARY_NOT_FOUND = 12


@dataclass
class FakeNvml:
    """Module-like stand-in for `pynvml` with the functions and constants the backend uses.

    `fail` maps a function name to the NVML error code it raises; `field_return` is the per-field
    `nvmlReturn` of field 186.
    """

    energy_mj: int = 5_000_000
    power_usage_mw: int = 60_000
    field_power_mw: int = 87_500
    field_return: int = 0
    mem_total: int = 80 * 2**30
    mem_used: int = 3 * 2**30
    util_gpu: int = 42
    sm_clock_mhz: int = 1410
    count: int = 1
    name: str | bytes = "NVIDIA H100 80GB HBM3"
    init_error: int | None = None
    fail: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    shutdowns: int = 0

    NVMLError = NVMLError
    NVML_ERROR_NOT_SUPPORTED = NOT_SUPPORTED
    NVML_ERROR_GPU_IS_LOST = GPU_IS_LOST

    def _maybe_fail(self, fn: str, args: Any = None) -> None:
        self.calls.append((fn, args))
        if fn in self.fail:
            raise NVMLError(self.fail[fn])

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"handle{index}"

    def nvmlDeviceGetName(self, handle: str) -> str | bytes:
        return self.name

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: str) -> int:
        self._maybe_fail("nvmlDeviceGetTotalEnergyConsumption")
        return self.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle: str) -> int:
        self._maybe_fail("nvmlDeviceGetPowerUsage")
        return self.power_usage_mw

    def nvmlDeviceGetFieldValues(self, handle: str, ids: list[tuple[int, int]]) -> list[Any]:
        self._maybe_fail("nvmlDeviceGetFieldValues", list(ids))
        return [
            SimpleNamespace(
                fieldId=fid,
                scopeId=scope,
                timestamp=0,
                latencyUsec=0,
                valueType=1,  # unsigned int
                nvmlReturn=self.field_return,
                value=SimpleNamespace(uiVal=self.field_power_mw if self.field_return == 0 else 0),
            )
            for fid, scope in ids
        ]

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> Any:
        self._maybe_fail("nvmlDeviceGetMemoryInfo")
        return SimpleNamespace(total=self.mem_total, used=self.mem_used, free=self.mem_total - self.mem_used)

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> Any:
        self._maybe_fail("nvmlDeviceGetUtilizationRates")
        return SimpleNamespace(gpu=self.util_gpu, memory=10)

    def nvmlDeviceGetClockInfo(self, handle: str, clock_type: int) -> int:
        self._maybe_fail("nvmlDeviceGetClockInfo", clock_type)
        return self.sm_clock_mhz if clock_type == 1 else 0


ALL_QUERIES = (
    "nvmlDeviceGetTotalEnergyConsumption",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetFieldValues",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetClockInfo",
)


def jetson_like_nvml() -> FakeNvml:
    """JetPack 6/7 Orin: nvmlInit works, one device, every query NOT_SUPPORTED (HARDWARE.md §3.4)."""
    return FakeNvml(name="Orin (nvgpu)", fail=dict.fromkeys(ALL_QUERIES, NOT_SUPPORTED), field_return=NOT_SUPPORTED)


class FakeClock:
    """A settable monotonic clock."""

    def __init__(self, t_s: float = 0.0) -> None:
        self.t_s = t_s

    def __call__(self) -> float:
        return self.t_s


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock(100.0)


def rapl_zone(root: Path, rel: str, name: str, energy_uj: int, max_uj: int = 262_143_328_850) -> Path:
    """A powercap zone under sys/devices/virtual/powercap/intel-rapl/<rel> with its class symlink."""
    d = root / "sys/devices/virtual/powercap/intel-rapl" / rel
    write(d / "name", name)
    write(d / "energy_uj", energy_uj)
    write(d / "max_energy_range_uj", max_uj)
    write(d / "enabled", 1)
    link(root / "sys/class/powercap" / Path(rel).name, d)
    return d


@pytest.fixture
def sysfs(tmp_path: Path) -> SimpleNamespace:
    """Builders of fake trees rooted at `tmp_path` (`.root`)."""
    root = tmp_path / "root"
    root.mkdir()
    return SimpleNamespace(
        root=root,
        write=write,
        link=link,
        hwmon_chip=lambda *a, **k: hwmon_chip(root, *a, **k),
        iio_chip=lambda *a, **k: iio_chip(root, *a, **k),
        meminfo=lambda **k: meminfo(root, **k),
        rapl_zone=lambda *a, **k: rapl_zone(root, *a, **k),
        failing_opener=failing_opener,
        enodata=enodata,
    )


@pytest.fixture
def nvml() -> SimpleNamespace:
    """The fake pynvml: `.Fake(**overrides)`, `.jetson_like()`, error codes."""
    return SimpleNamespace(
        Fake=FakeNvml,
        jetson_like=jetson_like_nvml,
        ALL_QUERIES=ALL_QUERIES,
        NOT_SUPPORTED=NOT_SUPPORTED,
        GPU_IS_LOST=GPU_IS_LOST,
        LIBRARY_NOT_FOUND=LIBRARY_NOT_FOUND,
        NVMLError=NVMLError,
    )
