"""NVIDIA backend against a fake pynvml module (HARDWARE.md §3)."""

from __future__ import annotations

import sys

import pytest

from node_agent.devices.base import DeviceError, DeviceUnavailable, TelemetrySource
from node_agent.devices.nvidia import NvidiaDevice

NVML = TelemetrySource.NVML
UNAVAILABLE = TelemetrySource.UNAVAILABLE


def test_all_supported_reads_every_metric_in_its_units(nvml):
    fake = nvml.Fake(energy_mj=5_000_000)
    dev = NvidiaDevice(0, nvml_module=fake)
    fake.energy_mj = 5_012_345  # +12.345 J
    r = dev.read()
    assert r.energy_j == pytest.approx(12.345) and r.energy_source is NVML
    assert r.power_w == pytest.approx(87.5) and r.power_source is NVML  # field 186, mW -> W
    assert ("nvmlDeviceGetFieldValues", [(186, 0)]) in fake.calls  # instant power, scope GPU
    assert r.mem_used_bytes == 3 * 2**30 and r.mem_total_bytes == 80 * 2**30 and r.mem_source is NVML
    assert r.util_pct == 42.0 and r.clock_mhz == 1410.0
    assert ("nvmlDeviceGetClockInfo", 1) in fake.calls  # NVML_CLOCK_SM
    info = dev.info()
    assert info.kind == "nvidia" and info.name == "NVIDIA H100 80GB HBM3"
    assert info.unavailable == {} and set(info.sources.values()) == {NVML}
    assert "186" in info.notes["power"]


def test_energy_not_supported_is_none_never_zero(nvml):
    fake = nvml.Fake(fail={"nvmlDeviceGetTotalEnergyConsumption": nvml.NOT_SUPPORTED})
    dev = NvidiaDevice(0, nvml_module=fake)
    r = dev.read()
    assert r.energy_j is None and r.energy_source is UNAVAILABLE
    assert "NOT_SUPPORTED" in dev.info().unavailable["energy"]
    assert dev.info().sources["energy"] is UNAVAILABLE
    assert r.power_w == pytest.approx(87.5)  # the other metrics still work


def test_util_and_clock_not_supported_are_none_never_zero(nvml):
    fake = nvml.Fake(
        fail={"nvmlDeviceGetUtilizationRates": nvml.NOT_SUPPORTED, "nvmlDeviceGetClockInfo": nvml.NOT_SUPPORTED}
    )
    r = NvidiaDevice(0, nvml_module=fake).read()
    assert r.util_pct is None and r.util_source is UNAVAILABLE
    assert r.clock_mhz is None and r.clock_source is UNAVAILABLE
    assert r.mem_source is NVML


def test_per_field_error_falls_back_to_power_usage(nvml):
    fake = nvml.Fake(field_return=nvml.NOT_SUPPORTED, power_usage_mw=61_250)
    dev = NvidiaDevice(0, nvml_module=fake)
    r = dev.read()
    assert r.power_w == pytest.approx(61.25) and r.power_source is NVML
    assert "nvmlDeviceGetPowerUsage" in dev.info().notes["power"]


def test_no_power_at_all_is_unavailable(nvml):
    fake = nvml.Fake(field_return=nvml.NOT_SUPPORTED, fail={"nvmlDeviceGetPowerUsage": nvml.NOT_SUPPORTED})
    dev = NvidiaDevice(0, nvml_module=fake)
    r = dev.read()
    assert r.power_w is None and r.power_source is UNAVAILABLE
    assert "NOT_SUPPORTED" in dev.info().unavailable["power"]


def test_jetson_like_nvml_inits_but_supports_nothing(nvml):
    fake = nvml.jetson_like()
    with pytest.raises(DeviceUnavailable, match="every query failed"):
        NvidiaDevice(0, nvml_module=fake)
    assert fake.shutdowns == 1  # init was balanced


def test_library_missing_raises_device_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    with pytest.raises(DeviceUnavailable, match="nvidia-ml-py"):
        NvidiaDevice(0)


def test_init_failure_and_bad_index(nvml):
    with pytest.raises(DeviceUnavailable, match="nvmlInit failed"):
        NvidiaDevice(0, nvml_module=nvml.Fake(init_error=nvml.LIBRARY_NOT_FOUND))
    with pytest.raises(DeviceUnavailable, match="index 2"):
        NvidiaDevice(2, nvml_module=nvml.Fake(count=1))


def test_bytes_name_is_decoded(nvml):
    assert NvidiaDevice(0, nvml_module=nvml.Fake(name=b"Tesla V100")).info().name == "Tesla V100"


def test_later_failure_gives_none_for_that_read_only(nvml):
    fake = nvml.Fake()
    dev = NvidiaDevice(0, nvml_module=fake)
    fake.fail["nvmlDeviceGetMemoryInfo"] = 999  # NVML_ERROR_UNKNOWN on this read
    r = dev.read()
    assert r.mem_used_bytes is None and r.mem_source is UNAVAILABLE
    del fake.fail["nvmlDeviceGetMemoryInfo"]
    assert dev.read().mem_used_bytes == 3 * 2**30


def test_energy_counter_reset_stays_monotonic(nvml):
    fake = nvml.Fake(energy_mj=10_000)
    dev = NvidiaDevice(0, nvml_module=fake)
    fake.energy_mj = 12_000
    assert dev.read().energy_j == pytest.approx(2.0)
    fake.energy_mj = 500  # driver reloaded: counter restarted from 0
    assert dev.read().energy_j == pytest.approx(2.5)


def test_gpu_lost_raises_and_close_is_idempotent(nvml):
    fake = nvml.Fake()
    dev = NvidiaDevice(0, nvml_module=fake)
    fake.fail["nvmlDeviceGetTotalEnergyConsumption"] = nvml.GPU_IS_LOST
    with pytest.raises(DeviceError, match="lost"):
        dev.read()
    dev.close()
    dev.close()
    assert fake.shutdowns == 1
    with pytest.raises(DeviceError):
        dev.read()
