"""Simulated device and the probing factory."""

from __future__ import annotations

import itertools
import statistics
import sys

import pytest

from node_agent.devices import EmptyDevice, available_kinds, probe_device
from node_agent.devices.base import DeviceUnavailable, TelemetrySource
from node_agent.devices.cpu import CpuDevice
from node_agent.devices.jetson import JetsonDevice
from node_agent.devices.nvidia import NvidiaDevice
from node_agent.devices.simulated import SimProfile, SimulatedDevice

PROFILE = {
    "idle_power_w": 5.0,
    "max_power_w": 25.0,
    "mem_total_bytes": 8 * 2**30,
    "idle_mem_used_bytes": 2**30,
    "max_mem_used_bytes": 3 * 2**30,
    "clock_mhz": 918.0,
    "ignored_other_key": "profiles carry more",
}


def run_sim(loads, dts, **overrides):
    """Open a simulated device at t=0 (first load value), then read after each step of `dts`."""
    loads_it = iter(loads)
    clock = FakeClock(0.0)
    dev = SimulatedDevice({**PROFILE, **overrides}, lambda: next(loads_it), monotonic=clock, wall_clock=lambda: 1e9)
    out = []
    for t_s in itertools.accumulate(dts):
        clock.t_s = t_s
        out.append(dev.read())
    return dev, out


class FakeClock:
    def __init__(self, t_s: float) -> None:
        self.t_s = t_s

    def __call__(self) -> float:
        return self.t_s


def test_power_energy_memory_follow_the_load_and_are_modeled():
    dev, (r1, r2) = run_sim([0.0, 0.25, 1.0], [2.0, 1.0])
    assert r1.power_w == pytest.approx(10.0)  # 5 + 20 * 0.25
    assert r2.power_w == pytest.approx(25.0)
    assert r1.energy_j == pytest.approx(0.5 * (5 + 10) * 2)  # trapezoid from the point taken at open
    assert r2.energy_j == pytest.approx(15 + 0.5 * (10 + 25) * 1)
    assert r1.mem_used_bytes == int(2**30 + 2 * 2**30 * 0.25)
    assert r2.util_pct == 100.0 and r2.clock_mhz == 918.0
    for src in (r1.power_source, r1.energy_source, r1.mem_source, r1.util_source, r1.clock_source):
        assert src is TelemetrySource.MODELED
    assert dev.info().kind == "simulated" and dev.info().unavailable == {}


def test_deterministic_given_inputs_and_seed():
    loads, dts = [0.1, 0.5, 0.9, 0.3, 0.0, 1.0], [0.1, 0.2, 0.1, 0.3, 0.1]
    _, a = run_sim(loads, dts, noise_std_w=0.5, seed=7)
    _, b = run_sim(loads, dts, noise_std_w=0.5, seed=7)
    _, c = run_sim(loads, dts, noise_std_w=0.5, seed=8)
    assert a == b
    assert [r.power_w for r in a] != [r.power_w for r in c]


def test_noise_has_the_stated_spread():
    n = 3000
    _, readings = run_sim([0.5] * (n + 1), [0.01] * n, noise_std_w=0.5, seed=1)
    powers = [r.power_w for r in readings]
    assert statistics.mean(powers) == pytest.approx(15.0, abs=0.05)
    assert statistics.stdev(powers) == pytest.approx(0.5, rel=0.1)


def test_load_is_clipped_and_nan_is_idle():
    _, (hi, lo, nan) = run_sim([0.0, 3.0, -1.0, float("nan")], [1, 1, 1])
    assert (hi.power_w, lo.power_w, nan.power_w) == (25.0, 5.0, 5.0)


def test_profile_from_toml_and_validation(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text(
        '[device]\nidle_power_w = 3.5\nmax_power_w = 15.0\nmem_total_bytes = 8589934592\nname = "orin-sim"\n'
    )
    dev = SimulatedDevice(path)
    assert dev.info().name == "orin-sim" and dev.read().power_w == 3.5
    assert dev.info().sources["clock"] is TelemetrySource.UNAVAILABLE
    with pytest.raises(ValueError, match="max_power_w"):
        SimProfile(idle_power_w=10, max_power_w=5, mem_total_bytes=1)
    with pytest.raises(ValueError, match="mem_total_bytes"):
        SimProfile.from_mapping({"idle_power_w": 1, "max_power_w": 2})


# -- factory ---------------------------------------------------------------------------------------
def jetson_tree(sysfs):
    sysfs.meminfo()
    sysfs.hwmon_chip("1-0040", 1, {1: ("VDD_IN", 5000, 1000), 2: ("VDD_CPU_GPU_CV", 5000, 100)})


def test_auto_prefers_nvidia_when_it_measures_power(sysfs, nvml):
    jetson_tree(sysfs)
    dev = probe_device(sysfs_root=sysfs.root, nvml_module=nvml.Fake())
    assert isinstance(dev, NvidiaDevice)


def test_auto_picks_jetson_when_nvml_supports_nothing(sysfs, nvml):
    jetson_tree(sysfs)
    fake = nvml.jetson_like()
    dev = probe_device(sysfs_root=sysfs.root, nvml_module=fake)
    assert isinstance(dev, JetsonDevice) and dev.read().power_w == pytest.approx(5.0)


def test_auto_nvml_without_power_loses_to_jetson_but_beats_cpu(sysfs, nvml):
    no_power = {q: nvml.NOT_SUPPORTED for q in nvml.ALL_QUERIES if q != "nvmlDeviceGetMemoryInfo"}
    assert isinstance(probe_device(sysfs_root=sysfs.root, nvml_module=nvml.Fake(fail=no_power)), NvidiaDevice)
    jetson_tree(sysfs)
    fake = nvml.Fake(fail=no_power)
    assert isinstance(probe_device(sysfs_root=sysfs.root, nvml_module=fake), JetsonDevice)
    assert fake.shutdowns == 1  # the NVML device that lost was closed


def test_auto_falls_back_to_cpu_with_power_unavailable(sysfs, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    dev = probe_device(sysfs_root=sysfs.root)
    assert isinstance(dev, CpuDevice)
    assert dev.info().sources["power"] is TelemetrySource.UNAVAILABLE


def test_explicit_kinds_fail_loudly(sysfs, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(DeviceUnavailable, match="INA3221"):
        probe_device("jetson", sysfs_root=sysfs.root)
    with pytest.raises(DeviceUnavailable, match="nvidia-ml-py"):
        probe_device("nvidia", sysfs_root=sysfs.root)
    with pytest.raises(DeviceUnavailable, match="sim_profile"):
        probe_device("simulated")
    with pytest.raises(ValueError, match="kind must be one of"):
        probe_device("tpu")
    assert isinstance(probe_device("none"), EmptyDevice)
    assert probe_device("none").read().power_source is TelemetrySource.UNAVAILABLE


def test_available_kinds_reports_reasons(sysfs, nvml):
    kinds = available_kinds(sysfs_root=sysfs.root, nvml_module=nvml.jetson_like(), sim_profile=PROFILE)
    assert kinds["cpu"] is None and kinds["simulated"] is None
    assert "every query failed" in kinds["nvidia"]
    assert "no INA3221" in kinds["jetson"]
