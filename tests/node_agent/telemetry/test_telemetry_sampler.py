"""TelemetrySampler: rate, drift-free scheduling, error handling, lifecycle."""

from __future__ import annotations

import logging
import time

import pytest

from node_agent.telemetry.log import TelemetryLog
from node_agent.telemetry.sampler import TelemetrySampler


def test_achieves_10_and_50_hz_within_20_percent(fakes):
    samplers = []
    for hz in (10.0, 50.0):
        s = TelemetrySampler(fakes.ScriptedDevice(), hz, TelemetryLog(), rss_fn=lambda: 123)
        samplers.append(s)
    for s in samplers:  # both run concurrently: ~1 s of wall time in total
        s.start()
    time.sleep(1.0)
    for s in samplers:
        s.stop()
    for s in samplers:
        stats = s.stats()
        assert not s.running
        assert stats.mean_period_s == pytest.approx(1.0 / s.hz, rel=0.2), s.hz
        assert stats.samples == pytest.approx(s.hz * 1.0, rel=0.25)
        assert s.log.latest_seq == stats.samples
        assert s.log.latest().process_rss_bytes == 123
        assert stats.errors == 0


def test_schedule_does_not_drift_when_reads_take_time(fakes):
    # 50 Hz with a 10 ms read: a naive sleep(period) loop would tick every ~30 ms (+50 %).
    s = TelemetrySampler(fakes.ScriptedDevice(read_sleep_s=0.010), 50.0, TelemetryLog(), rss_fn=None)
    s.start()
    time.sleep(0.6)
    s.stop()
    assert s.stats().mean_period_s == pytest.approx(0.020, rel=0.2)


def test_overrun_skips_ticks_instead_of_bursting(fakes):
    s = TelemetrySampler(fakes.ScriptedDevice(read_sleep_s=0.035), 50.0, TelemetryLog(), rss_fn=None)
    s.start()
    time.sleep(0.4)
    s.stop()
    stats = s.stats()
    assert stats.overruns >= 5
    assert stats.min_period_s >= 0.03  # never a burst of catch-up reads


def test_read_errors_are_counted_bounded_logged_and_not_fatal(fakes, caplog):
    device = fakes.ScriptedDevice(fail_every=2)
    s = TelemetrySampler(device, 100.0, TelemetryLog(), rss_fn=None, max_logged_errors=3)
    with caplog.at_level(logging.WARNING, logger="node_agent.telemetry.sampler"):
        s.start()
        time.sleep(0.2)
        assert s.running
        s.stop()
    stats = s.stats()
    assert stats.errors >= 5 and stats.samples >= 5
    assert abs(stats.errors - stats.samples) <= 1
    assert "scripted failure" in stats.last_error
    assert len(caplog.records) == 4  # 3 errors + "further errors are counted, not logged"


@pytest.mark.parametrize("hz", [0.5, 100.5, float("nan"), float("inf")])
def test_rate_is_validated(fakes, hz):
    with pytest.raises(ValueError, match="hz"):
        TelemetrySampler(fakes.ScriptedDevice(), hz, TelemetryLog())


def test_lifecycle(fakes):
    s = TelemetrySampler(fakes.ScriptedDevice(), 100.0, TelemetryLog(), rss_fn=None)
    assert s.actual_period_s is None
    s.start()
    with pytest.raises(RuntimeError):
        s.start()
    time.sleep(0.05)
    s.stop()
    s.stop()  # idempotent
    assert not s.running and s.stats().thread_cpu_s >= 0.0
