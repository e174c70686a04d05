"""Fake devices for the telemetry tests."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from node_agent.devices.base import Device, DeviceInfo, Reading, TelemetrySource

SRC = TelemetrySource


def reading(
    t_s: float,
    *,
    power_w: float | None = None,
    energy_j: float | None = None,
    mem_used_bytes: int | None = None,
) -> Reading:
    """A reading at monotonic time `t_s` with the given values (sources set accordingly)."""
    return Reading(
        t_unix_s=1_700_000_000.0 + t_s,
        t_monotonic_s=t_s,
        power_w=power_w,
        power_source=SRC.RAPL if power_w is not None else SRC.UNAVAILABLE,
        energy_j=energy_j,
        energy_source=SRC.RAPL if energy_j is not None else SRC.UNAVAILABLE,
        mem_used_bytes=mem_used_bytes,
        mem_total_bytes=None if mem_used_bytes is None else 2**34,
        mem_source=SRC.PSUTIL if mem_used_bytes is not None else SRC.UNAVAILABLE,
    )


class ScriptedDevice(Device):
    """Returns the queued readings in order (thread-safe); `fail_every` raises on every n-th read."""

    def __init__(self, readings: list[Reading] | None = None, *, fail_every: int = 0, read_sleep_s: float = 0.0):
        self.queue = list(readings or [])
        self.fail_every = fail_every
        self.read_sleep_s = read_sleep_s
        self.n_reads = 0
        self._lock = threading.Lock()

    def info(self) -> DeviceInfo:
        return DeviceInfo(kind="simulated", name="scripted", mem_total_bytes=None, sources={})

    def read(self) -> Reading:
        if self.read_sleep_s:
            time.sleep(self.read_sleep_s)
        with self._lock:
            self.n_reads += 1
            if self.fail_every and self.n_reads % self.fail_every == 0:
                raise RuntimeError(f"scripted failure {self.n_reads}")
            if self.queue:
                return self.queue.pop(0)
            return reading(time.monotonic(), power_w=1.0)


@pytest.fixture
def fakes() -> SimpleNamespace:
    return SimpleNamespace(reading=reading, ScriptedDevice=ScriptedDevice)
