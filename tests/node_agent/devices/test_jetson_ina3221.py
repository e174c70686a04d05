"""Jetson INA3221 backend against fake sysfs trees of both layouts (HARDWARE.md §1)."""

from __future__ import annotations

import pytest

from node_agent.devices.base import DeviceUnavailable, TelemetrySource
from node_agent.devices.ina3221 import find_chips
from node_agent.devices.jetson import JetsonDevice, parse_meminfo

JET = TelemetrySource.JETSON_INA3221
UNAVAILABLE = TelemetrySource.UNAVAILABLE


def orin_nano(sysfs):
    """JP5/JP6 Orin Nano, values of HARDWARE.md §1.5."""
    sysfs.meminfo()
    sysfs.write(sysfs.root / "proc/device-tree/model", "NVIDIA Jetson Orin Nano Developer Kit\x00")
    sysfs.write(sysfs.root / "sys/devices/platform/gpu.0/load", 630)
    devfreq = sysfs.root / "sys/devices/platform/bus@0/17000000.gpu"
    sysfs.write(devfreq / "of_node/name", "gpu\x00")
    sysfs.write(devfreq / "devfreq/17000000.gpu/cur_freq", 624_750_000)
    sysfs.link(sysfs.root / "sys/class/devfreq/17000000.gpu", devfreq / "devfreq/17000000.gpu")
    sysfs.link(devfreq / "devfreq/17000000.gpu/device", devfreq)
    return sysfs.hwmon_chip(
        "1-0040",
        1,
        {1: ("VDD_IN", 5056, 956), 2: ("VDD_CPU_GPU_CV", 5056, 102), 3: ("VDD_SOC", 5056, 291)},
        update_interval_ms=8,
    )


def test_orin_nano_hwmon_total_is_vdd_in(sysfs, fake_clock):
    orin_nano(sysfs)
    dev = JetsonDevice(sysfs_root=sysfs.root, monotonic=fake_clock)
    r = dev.read()
    assert r.power_w == pytest.approx(5056 * 956 / 1e6)  # 4.834 W, V[mV]·I[mA]/1e6
    assert r.rails_w == pytest.approx(
        {"VDD_IN": 4.833536, "VDD_CPU_GPU_CV": 5056 * 102 / 1e6, "VDD_SOC": 5056 * 291 / 1e6}
    )
    assert r.power_source is JET and r.energy_source is JET
    info = dev.info()
    assert info.kind == "jetson" and info.name == "NVIDIA Jetson Orin Nano Developer Kit"
    assert info.notes["total_power_rule"].startswith("VDD_IN")
    assert info.native_update_period_s == pytest.approx(0.008)
    assert r.util_pct == pytest.approx(63.0) and r.util_source is JET  # per-mille / 10
    assert r.clock_mhz == pytest.approx(624.75)
    assert r.mem_total_bytes == 7_802_880 * 1024
    assert r.mem_used_bytes == (7_802_880 - 3_500_000) * 1024
    assert info.notes["mem_used"] == "MemTotal - MemAvailable"
    # channel 7 (sum of shunt voltages) and the in4..6 shunt voltages are not rails, not even failed ones
    assert not [k for k in info.notes if k.startswith("unavailable_channel")]


def test_energy_is_trapezoid_of_total_power_over_reads(sysfs, fake_clock):
    chip = orin_nano(sysfs)
    dev = JetsonDevice(sysfs_root=sysfs.root, monotonic=fake_clock)  # first point at open
    p0 = 5056 * 956 / 1e6
    fake_clock.t_s += 2.0
    sysfs.write(chip / "curr1_input", 2000)
    p1 = 5056 * 2000 / 1e6
    assert dev.read().energy_j == pytest.approx(0.5 * (p0 + p1) * 2.0, rel=1e-12)
    fake_clock.t_s += 1.0
    assert dev.read().energy_j == pytest.approx(0.5 * (p0 + p1) * 2.0 + p1 * 1.0, rel=1e-12)


def test_agx_orin_sum_excludes_vddq_and_skips_nc_and_failing_channel(sysfs, fake_clock):
    sysfs.meminfo()
    sysfs.hwmon_chip(
        "1-0040", 1, {1: ("VDD_GPU_SOC", 19_000, 200), 2: ("VDD_CPU_CV", 19_000, 100), 3: ("VIN_SYS_5V0", 5000, 700)}
    )
    c41 = sysfs.hwmon_chip("1-0041", 2, {1: ("NC", 0, 0), 2: ("VDDQ_VDD2_1V8AO", 5000, 60), 3: ("NC", 0, 0)})
    opener = sysfs.failing_opener([c41 / "in3_input"], sysfs.enodata)  # as in alumet issue #212
    dev = JetsonDevice(sysfs_root=sysfs.root, opener=opener, monotonic=fake_clock)
    r = dev.read()
    assert set(r.rails_w) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"}
    assert r.power_w == pytest.approx(3.8 + 1.9 + 3.5)  # VDDQ_VDD2_1V8AO (0.3 W) not added
    assert "VDDQ_VDD2_1V8AO excluded" in dev.info().notes["total_power_rule"]
    assert dev.info().unavailable.get("power") is None


def test_failing_rail_needed_by_rule_makes_total_unavailable(sysfs, fake_clock):
    sysfs.meminfo()
    c40 = sysfs.hwmon_chip(
        "1-0040", 1, {1: ("VDD_GPU_SOC", 19_000, 200), 2: ("VDD_CPU_CV", 19_000, 100), 3: ("VIN_SYS_5V0", 5000, 700)}
    )
    opener = sysfs.failing_opener([c40 / "curr3_input"], sysfs.enodata)
    dev = JetsonDevice(sysfs_root=sysfs.root, opener=opener, monotonic=fake_clock)
    r = dev.read()
    assert r.power_w is None and r.energy_j is None and r.power_source is UNAVAILABLE
    assert "VIN_SYS_5V0" in dev.info().unavailable["power"]
    assert "1-0040/VIN_SYS_5V0" in " ".join(dev.info().notes)  # the failing channel is reported
    assert set(r.rails_w) == {"VDD_GPU_SOC", "VDD_CPU_CV"}  # the readable rails still come through


XAVIER_RAILS = [("GPU", 1155), ("CPU", 385), ("SOC", 2504), ("CV", 0), ("VDDRQ", 192), ("SYS5V", 2692)]


@pytest.mark.parametrize("layout", ["hwmon", "iio"])
def test_agx_xavier_total_is_sum_of_six_in_both_layouts(sysfs, fake_clock, layout):
    sysfs.meminfo()
    for chip, rails in (("1-0040", XAVIER_RAILS[:3]), ("1-0041", XAVIER_RAILS[3:])):
        if layout == "hwmon":  # channels from 1, mV x mA
            sysfs.hwmon_chip(
                chip, 3 if chip.endswith("0") else 4, {i + 1: (n, 1000, mw) for i, (n, mw) in enumerate(rails)}
            )
        else:  # channels from 0, direct mW
            sysfs.iio_chip(chip, int(chip[-1]), {i: (n, 19_000, 1, mw) for i, (n, mw) in enumerate(rails)})
    sysfs.write(sysfs.root / "sys/devices/gpu.0/load", 1000)  # older path (Nano, AGX Xavier)
    dev = JetsonDevice(sysfs_root=sysfs.root, monotonic=fake_clock)
    r = dev.read()
    assert r.power_w == pytest.approx(sum(mw for _, mw in XAVIER_RAILS) / 1e3)
    assert r.rails_w["SYS5V"] == pytest.approx(2.692)
    assert dev.info().notes["total_power_rule"].startswith("AGX Xavier")
    assert r.util_pct == pytest.approx(100.0)
    assert r.clock_mhz is None and r.clock_source is UNAVAILABLE  # no devfreq node in this tree


def test_nano_iio_total_is_pom_5v_in_not_the_sum(sysfs, fake_clock):
    sysfs.meminfo(available_kb=None)  # old kernel: jtop formula
    d = sysfs.iio_chip(
        "6-0040", 0, {0: ("POM_5V_IN", 5000, 186, 933), 1: ("POM_5V_GPU", 5000, 0, 0), 2: ("POM_5V_CPU", 5000, 17, 84)}
    )
    assert (d / "in_power0_input").read_text() == "933\n"
    dev = JetsonDevice(sysfs_root=sysfs.root, monotonic=fake_clock)
    r = dev.read()
    assert r.power_w == pytest.approx(0.933)  # direct mW file, not V·I = 0.93 W, not the sum 1.017 W
    assert dev.info().notes["total_power_rule"].startswith("POM_5V_IN")
    assert "MemFree" in dev.info().notes["mem_used"]
    assert r.mem_used_bytes == (7_802_880 - 1_000_000 - 50_000 - 2_000_000 - 100_000) * 1024
    assert dev.info().native_update_period_s is None  # "0 ms" polling delay = unknown


def test_unknown_labels_give_rails_but_no_total(sysfs, fake_clock):
    sysfs.meminfo()
    sysfs.hwmon_chip("2-0042", 0, {1: ("FOO", 5000, 100), 2: ("BAR", 5000, 200)})
    dev = JetsonDevice(sysfs_root=sysfs.root, monotonic=fake_clock)
    r = dev.read()
    assert r.power_w is None and r.power_source is UNAVAILABLE
    assert r.rails_w == pytest.approx({"FOO": 0.5, "BAR": 1.0})
    assert "no total-power rule" in dev.info().unavailable["power"]


def test_discovery_via_devices_only_checks_name_and_dedupes(sysfs):
    orin_nano(sysfs)
    chips = find_chips(sysfs.root)
    assert len(chips) == 1 and chips[0][:2] == ("1-0040", "hwmon")  # driver and devices links: one chip
    other = sysfs.root / "sys/bus/i2c/devices/0-0050/hwmon/hwmon9"  # a non-INA3221 hwmon device
    sysfs.write(other.parent.parent / "name", "tmp451")
    sysfs.write(other / "in1_label", "VDD_IN")
    assert len(find_chips(sysfs.root)) == 1


def test_disabled_channel_is_left_out(sysfs, fake_clock):
    sysfs.meminfo()
    chip = sysfs.hwmon_chip("1-0040", 1, {1: ("VDD_IN", 5000, 1000), 2: ("VDD_SOC", 5000, 100)})
    sysfs.write(chip / "in2_enable", 0)
    dev = JetsonDevice(sysfs_root=sysfs.root, monotonic=fake_clock)
    assert set(dev.read().rails_w) == {"VDD_IN"}
    assert any("disabled" in v for v in dev.info().notes.values())


def test_no_sensor_raises(sysfs):
    with pytest.raises(DeviceUnavailable, match="no INA3221"):
        JetsonDevice(sysfs_root=sysfs.root)


def test_parse_meminfo_units():
    used, total, formula = parse_meminfo("MemTotal: 100 kB\nMemAvailable: 40 kB\n")
    assert (used, total, formula) == (60 * 1024, 100 * 1024, "MemTotal - MemAvailable")
