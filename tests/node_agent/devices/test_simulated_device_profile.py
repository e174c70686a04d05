"""The simulated device reads a shipped device profile's [sim] table with plain tomllib (no pydantic)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from node_agent.devices import probe_device
from node_agent.devices.base import DeviceUnavailable, TelemetrySource
from node_agent.devices.simulated import SimProfile, SimulatedDevice

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[3]
DEVICES = REPO / "profiles" / "devices"
ORIN_NANO = DEVICES / "jetson-orin-nano.toml"


def sim_table(path: Path) -> dict:
    return tomllib.loads(path.read_text())["sim"]


@pytest.mark.parametrize("load", [0.0, 0.3, 0.5, 1.0])
def test_orin_nano_profile_power_lies_between_sim_idle_and_max(load):
    sim = sim_table(ORIN_NANO)
    assert sim["idle_power_w"] < sim["max_power_w"]
    dev = SimulatedDevice(ORIN_NANO, lambda: load)
    reading = dev.read()
    assert sim["idle_power_w"] <= reading.power_w <= sim["max_power_w"]
    expected = sim["idle_power_w"] + (sim["max_power_w"] - sim["idle_power_w"]) * load
    assert reading.power_w == pytest.approx(expected)
    assert reading.power_source is TelemetrySource.MODELED
    assert sim["idle_mem_used_bytes"] <= reading.mem_used_bytes <= sim["max_mem_used_bytes"]
    assert reading.mem_total_bytes == sim["mem_total_bytes"]
    assert dev.info().name == sim["name"]


def test_sim_table_wins_over_top_level_keys(tmp_path):
    """A device profile also has a top-level mem_total_bytes: the [sim] one is used."""
    path = tmp_path / "dev.toml"
    path.write_text(
        "mem_total_bytes = 999\n[device]\nidle_power_w = 9.0\nmax_power_w = 9.0\nmem_total_bytes = 9\n"
        "[sim]\nidle_power_w = 1.0\nmax_power_w = 2.0\nmem_total_bytes = 1000\n"
    )
    profile = SimProfile.from_toml(path)
    assert (profile.idle_power_w, profile.max_power_w, profile.mem_total_bytes) == (1.0, 2.0, 1000)


def test_device_profile_without_sim_table_is_refused_clearly():
    no_sim = DEVICES / "jetson-orin-nx.toml"
    assert "sim" not in tomllib.loads(no_sim.read_text())
    with pytest.raises(ValueError, match=r"no \[sim\] table"):
        SimProfile.from_toml(no_sim)
    with pytest.raises(DeviceUnavailable, match=r"no \[sim\] table"):
        probe_device("simulated", sim_profile=no_sim)


def test_simulated_backend_needs_no_pydantic_or_profiles_package():
    code = (
        "import sys\n"
        "from node_agent.devices.simulated import SimulatedDevice\n"
        f"SimulatedDevice({str(ORIN_NANO)!r}).read()\n"
        "bad = [m for m in sys.modules if m == 'pydantic' or m.startswith('profiles')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)
