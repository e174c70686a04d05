"""EnergyMeter: counter deltas, trapezoid integration with edge interpolation, peaks, overlap."""

from __future__ import annotations

import itertools
import time

import pytest

from node_agent.devices.base import TelemetrySource
from node_agent.devices.simulated import SimulatedDevice
from node_agent.telemetry.energy import EnergyMeter, integrate_power_j
from node_agent.telemetry.log import TelemetryLog
from node_agent.telemetry.sampler import TelemetrySampler


def scripted_rss(*values):
    it = iter(values)
    return lambda: next(it)


def test_counter_device_gives_exactly_the_counter_delta(fakes):
    r = fakes.reading
    # begin read, end read; power values deliberately inconsistent with the counter
    device = fakes.ScriptedDevice([r(10.0, power_w=1.0, energy_j=100.25), r(12.0, power_w=1.0, energy_j=173.5)])
    meter = EnergyMeter(device, rss_fn=scripted_rss(1, 2))
    window = meter.end(meter.begin())
    assert window.method == "counter" and window.source is TelemetrySource.RAPL
    assert window.energy_j == 173.5 - 100.25
    assert window.duration_s == pytest.approx(2.0)
    assert window.mean_power_w == pytest.approx((173.5 - 100.25) / 2.0)
    assert device.n_reads == 2  # read directly at begin and end, not from the sampler


def test_power_only_device_integrates_samples_by_trapezoid(fakes):
    r = fakes.reading
    log = TelemetryLog()
    device = fakes.ScriptedDevice([r(1.0, power_w=10.0), r(4.0, power_w=40.0)])  # begin, end reads
    meter = EnergyMeter(device, log, rss_fn=scripted_rss(None, None))
    log.append(r(0.5, power_w=99.0))  # before the window: only used for interpolation
    token = meter.begin()
    for t_s, p_w in ((2.0, 20.0), (3.0, 10.0)):
        log.append(r(t_s, power_w=p_w))
    window = meter.end(token)
    expected = 0.5 * (10 + 20) * 1 + 0.5 * (20 + 10) * 1 + 0.5 * (10 + 40) * 1
    assert window.method == "integrated" and window.energy_j == pytest.approx(expected)
    assert window.n_samples == 2 and window.source is TelemetrySource.RAPL
    assert window.peak_mem_bytes is None and window.peak_mem_source is TelemetrySource.UNAVAILABLE


def test_edges_are_interpolated_when_begin_end_reads_lack_power(fakes):
    r = fakes.reading
    log = TelemetryLog()
    for t_s in (-1.0, 0.0):  # sampler samples before the window
        log.append(r(t_s, power_w=10.0 * t_s + 10.0))  # p(t) = 10 t + 10
    device = fakes.ScriptedDevice([r(0.5), r(2.5)])  # the edge reads have no power
    meter = EnergyMeter(device, log, rss_fn=scripted_rss(1, 1))
    token = meter.begin()
    for t_s in (1.0, 2.0, 3.0):
        log.append(r(t_s, power_w=10.0 * t_s + 10.0))
    window = meter.end(token)
    # exact for a linear p(t): 5 t^2 + 10 t from 0.5 to 2.5 = 30 + 20 = 50 J
    assert window.energy_j == pytest.approx(50.0)
    assert window.n_samples == 2
    assert window.reason is None


def test_integrate_power_holds_beyond_the_points():
    assert integrate_power_j([(1.0, 5.0), (2.0, 5.0)], 0.0, 3.0) == pytest.approx(15.0)
    assert integrate_power_j([(0.0, 0.0), (2.0, 20.0)], 0.5, 1.5) == pytest.approx(10.0)
    assert integrate_power_j([(0.0, 1.0)], 2.0, 2.0) == 0.0
    with pytest.raises(ValueError):
        integrate_power_j([], 0.0, 1.0)


def test_unavailable_when_device_measures_neither(fakes):
    r = fakes.reading
    meter = EnergyMeter(fakes.ScriptedDevice([r(0.0), r(1.0)]), TelemetryLog(), rss_fn=scripted_rss(1, 1))
    window = meter.end(meter.begin())
    assert window.energy_j is None and window.method == "unavailable"
    assert window.source is TelemetrySource.UNAVAILABLE and "neither" in window.reason


def test_failed_read_makes_window_unavailable_not_an_exception(fakes):
    device = fakes.ScriptedDevice(fail_every=1)
    window = EnergyMeter(device, rss_fn=scripted_rss(1, 1)).end(EnergyMeter(device).begin())
    assert window.method == "unavailable" and "scripted failure" in window.reason


def test_peak_memory_covers_edges_and_samples_inside_only(fakes):
    r = fakes.reading
    log = TelemetryLog()
    log.append(r(0.0, mem_used_bytes=10**12), process_rss_bytes=10**12)  # before: not counted
    device = fakes.ScriptedDevice([r(1.0, energy_j=0.0, mem_used_bytes=100), r(5.0, energy_j=1.0, mem_used_bytes=300)])
    meter = EnergyMeter(device, log, rss_fn=scripted_rss(1000, 2000))
    token = meter.begin()
    log.append(r(2.0, mem_used_bytes=900), process_rss_bytes=7000)
    log.append(r(3.0, mem_used_bytes=200), process_rss_bytes=1500)
    window = meter.end(token)
    assert window.peak_mem_bytes == 7000 and window.peak_mem_source is TelemetrySource.PSUTIL
    assert window.peak_device_mem_used_bytes == 900 and window.device_mem_source is TelemetrySource.PSUTIL


def test_overlapping_windows_each_get_the_device_total_of_their_interval(fakes):
    r = fakes.reading
    energies = [r(0.0, energy_j=1.0), r(1.0, energy_j=3.0), r(2.0, energy_j=10.0), r(3.0, energy_j=11.0)]
    meter = EnergyMeter(fakes.ScriptedDevice(energies), rss_fn=itertools.repeat(1).__next__)
    a = meter.begin()
    b = meter.begin()
    wa = meter.end(a)
    wb = meter.end(b)
    assert (wa.energy_j, wb.energy_j) == (9.0, 8.0)
    assert (wa.duration_s, wb.duration_s) == (2.0, 2.0)


def test_dropped_samples_are_counted(fakes):
    r = fakes.reading
    log = TelemetryLog(capacity=3)
    device = fakes.ScriptedDevice([r(0.0, power_w=1.0), r(10.0, power_w=1.0)])
    meter = EnergyMeter(device, log, rss_fn=itertools.repeat(1).__next__)
    token = meter.begin()
    for i in range(1, 9):
        log.append(r(float(i), power_w=1.0))
    window = meter.end(token)
    assert window.samples_missed == 5 and window.n_samples == 3
    assert window.energy_j == pytest.approx(10.0)


def test_with_a_running_sampler_and_simulated_device():
    device = SimulatedDevice({"idle_power_w": 4.0, "max_power_w": 4.0, "mem_total_bytes": 2**30})
    sampler = TelemetrySampler(device, 50.0, TelemetryLog())
    sampler.start()
    try:
        meter = EnergyMeter(device, sampler)
        token = meter.begin()
        time.sleep(0.2)
        window = meter.end(token)
    finally:
        sampler.stop()
    assert window.method == "counter" and window.source is TelemetrySource.MODELED
    assert window.energy_j == pytest.approx(4.0 * window.duration_s, rel=1e-9)
    assert window.n_samples >= 5
    assert window.peak_mem_bytes > 0 and window.peak_mem_source is TelemetrySource.PSUTIL
