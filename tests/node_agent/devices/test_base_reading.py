"""Reading invariants and the small helpers of the device base module."""

from __future__ import annotations

import pytest

from node_agent.devices.base import DeltaTracker, EmptyDevice, PowerIntegrator, Reading, TelemetrySource

SRC = TelemetrySource


def make(power_w, power_source):
    return Reading(
        t_unix_s=0.0,
        t_monotonic_s=0.0,
        power_w=power_w,
        power_source=power_source,
        energy_j=None,
        energy_source=SRC.UNAVAILABLE,
        mem_used_bytes=None,
        mem_total_bytes=None,
        mem_source=SRC.UNAVAILABLE,
    )


def test_value_and_source_must_agree():
    assert make(3.0, SRC.RAPL).power_w == 3.0
    with pytest.raises(ValueError, match="power"):
        make(0.0, SRC.UNAVAILABLE)  # a made-up 0 labelled unavailable
    with pytest.raises(ValueError, match="power"):
        make(None, SRC.NVML)  # a missing value presented as measured


def test_source_labels_are_the_house_list():
    assert {s.value for s in SRC} == {"nvml", "jetson-ina3221", "rapl", "psutil", "modeled", "unavailable"}
    assert str(SRC.JETSON_INA3221) == "jetson-ina3221"


def test_power_integrator_trapezoid_and_gap():
    integ = PowerIntegrator()
    assert integ.add(0.0, 10.0) == 0.0
    assert integ.add(1.0, 20.0) == pytest.approx(15.0)
    assert integ.add(2.0, None) == pytest.approx(15.0)  # gap: nothing added yet
    assert integ.add(3.0, 20.0) == pytest.approx(15.0 + 40.0)  # bridged linearly from t=1 to t=3


def test_delta_tracker_waits_for_a_full_interval():
    tracker = DeltaTracker(min_interval_s=0.1)
    assert tracker.update(0.0, (0.0,)) is None
    assert tracker.update(0.05, (1.0,)) is None
    assert tracker.update(0.2, (4.0,)) == (0.2, (4.0,))
    assert tracker.update(0.25, (100.0,)) == (0.2, (4.0,))  # too close: previous result repeated
    assert not tracker.due(0.25) and tracker.due(0.31)


def test_empty_device_reports_everything_unavailable_with_reason():
    dev = EmptyDevice("nothing found")
    r = dev.read()
    assert (r.power_w, r.energy_j, r.mem_used_bytes) == (None, None, None)
    assert set(dev.info().unavailable.values()) == {"nothing found"}
    assert dev.info().kind == "none"
