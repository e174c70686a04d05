"""CPU device and RAPL powercap reader against fake trees (HARDWARE.md §2)."""

from __future__ import annotations

import time

import pytest

from node_agent.devices.base import DeviceUnavailable, TelemetrySource
from node_agent.devices.cpu import CpuDevice
from node_agent.devices.rapl import RaplReader

MAX_UJ = 262_143_328_850  # real-looking max_energy_range_uj


def two_socket_tree(sysfs, *, dram_subzone: bool = True):
    p0 = sysfs.rapl_zone("intel-rapl:0", "package-0", 1_000_000)
    sysfs.rapl_zone("intel-rapl:0/intel-rapl:0:0", "core", 500_000)
    p1 = sysfs.rapl_zone("intel-rapl:1", "package-1", 2_000_000)
    if dram_subzone:
        dram = sysfs.rapl_zone("intel-rapl:0/intel-rapl:0:1", "dram", 300_000)
    else:  # alumet's mock puts dram and psys at top level
        dram = sysfs.rapl_zone("intel-rapl:2", "dram", 300_000)
        sysfs.rapl_zone("intel-rapl:3", "psys", 9_000_000)
    return p0, p1, dram


@pytest.mark.parametrize("dram_subzone", [True, False])
def test_packages_summed_dram_separate_core_and_psys_ignored(sysfs, fake_clock, dram_subzone):
    p0, p1, dram = two_socket_tree(sysfs, dram_subzone=dram_subzone)
    dev = CpuDevice(sysfs_root=sysfs.root, monotonic=fake_clock)
    assert dev.info().sources["power"] is TelemetrySource.RAPL
    assert dev.info().native_update_period_s == pytest.approx(0.001)
    sysfs.write(p0 / "energy_uj", 1_000_000 + 3_000_000)  # +3 J
    sysfs.write(p1 / "energy_uj", 2_000_000 + 1_500_000)  # +1.5 J
    sysfs.write(dram / "energy_uj", 300_000 + 250_000)  # +0.25 J
    fake_clock.t_s += 0.5
    r = dev.read()
    assert r.energy_j == pytest.approx(4.5)
    assert r.energy_source is TelemetrySource.RAPL
    assert r.power_w == pytest.approx(4.5 / 0.5)
    assert r.power_source is TelemetrySource.RAPL
    assert r.extra["dram_energy_j"] == pytest.approx(0.25)
    assert r.extra["dram_power_w"] == pytest.approx(0.5)


def test_energy_delta_across_wraparound_is_exact(sysfs, fake_clock):
    zone = sysfs.rapl_zone("intel-rapl:0", "package-0", MAX_UJ - 1_000_000)  # 1 J before the wrap
    dev = CpuDevice(sysfs_root=sysfs.root, monotonic=fake_clock)
    sysfs.write(zone / "energy_uj", 2_000_000)  # wrapped, then 2 J more
    fake_clock.t_s += 1.0
    r = dev.read()
    assert r.energy_j == pytest.approx(3.0, abs=1e-9)
    assert r.power_w == pytest.approx(3.0)
    sysfs.write(zone / "energy_uj", 2_500_000)  # no wrap: +0.5 J, cumulative keeps increasing
    fake_clock.t_s += 1.0
    assert dev.read().energy_j == pytest.approx(3.5, abs=1e-9)


def test_wrap_delta_formula():
    assert RaplReader.wrap_delta_uj(MAX_UJ - 10, 5, MAX_UJ) == 15
    assert RaplReader.wrap_delta_uj(100, 250, MAX_UJ) == 150


def test_power_needs_a_full_interval(sysfs, fake_clock):
    zone = sysfs.rapl_zone("intel-rapl:0", "package-0", 0)
    dev = CpuDevice(sysfs_root=sysfs.root, monotonic=fake_clock, min_power_interval_s=0.02)
    sysfs.write(zone / "energy_uj", 10)
    fake_clock.t_s += 0.001  # closer than the minimum interval: no quotient of tiny numbers
    r = dev.read()
    assert r.power_w is None and r.power_source is TelemetrySource.UNAVAILABLE
    assert r.energy_j == pytest.approx(10e-6)


def test_permission_error_makes_power_unavailable_not_zero(sysfs, fake_clock):
    zone = sysfs.rapl_zone("intel-rapl:0", "package-0", 1_000_000)

    def deny(path):
        raise PermissionError(13, "Permission denied", str(path))

    opener = sysfs.failing_opener([zone / "energy_uj"], deny)
    dev = CpuDevice(sysfs_root=sysfs.root, rapl_opener=opener, monotonic=fake_clock)
    info = dev.info()
    assert info.sources["power"] is TelemetrySource.UNAVAILABLE
    assert "root" in info.unavailable["energy"] and "CVE-2020-8694" in info.unavailable["energy"]
    fake_clock.t_s += 1.0
    r = dev.read()
    assert r.power_w is None and r.energy_j is None
    assert r.power_source is TelemetrySource.UNAVAILABLE and r.energy_source is TelemetrySource.UNAVAILABLE
    assert r.mem_source is TelemetrySource.PSUTIL  # the rest still works
    with pytest.raises(DeviceUnavailable, match="root-only"):
        RaplReader(sysfs.root, opener)


def test_no_rapl_tree_reports_reason(sysfs):
    dev = CpuDevice(sysfs_root=sysfs.root)
    assert "no RAPL package zone" in dev.info().unavailable["power"]
    assert dev.read().power_w is None


def test_multi_die_names_and_mmio_not_double_counted(sysfs, fake_clock):
    d0 = sysfs.rapl_zone("intel-rapl:0", "package-0-die-0", 0)
    d1 = sysfs.rapl_zone("intel-rapl:1", "package-0-die-1", 0)
    mmio = sysfs.root / "sys/class/powercap/intel-rapl-mmio:0"
    sysfs.write(mmio / "name", "package-0")
    sysfs.write(mmio / "energy_uj", 0)
    sysfs.write(mmio / "max_energy_range_uj", MAX_UJ)
    dev = CpuDevice(sysfs_root=sysfs.root, monotonic=fake_clock)
    for d in (d0, d1, mmio):
        sysfs.write(d / "energy_uj", 1_000_000)
    fake_clock.t_s += 1
    assert dev.read().energy_j == pytest.approx(2.0)  # two dies, the mmio duplicate is ignored


def test_real_host_values_are_labelled():
    dev = CpuDevice(min_util_interval_s=0.05)
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:  # burn some CPU so the kernel's CPU times advance
        pass
    r = dev.read()
    assert r.mem_source is TelemetrySource.PSUTIL
    assert 0 < r.mem_used_bytes <= r.mem_total_bytes == dev.info().mem_total_bytes
    assert r.util_pct is not None and 0.0 <= r.util_pct <= 100.0
    assert dev.info().kind == "cpu" and dev.info().name
    for metric, source in dev.info().sources.items():
        assert (source is TelemetrySource.UNAVAILABLE) == (metric in dev.info().unavailable)
