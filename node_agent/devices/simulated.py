"""Simulated device for scale tests and CI: values come from a profile and a load function.

power = idle_power_w + (max_power_w - idle_power_w) * load, memory likewise between
`idle_mem_used_bytes` and `max_mem_used_bytes`; energy is the trapezoid integral of that power over
reads. Every value is labelled `modeled`. Given the same profile, load values and clock readings, the
output is identical; optional Gaussian power noise (`noise_std_w`) comes from a generator seeded with
`seed`.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from node_agent.devices.base import Device, DeviceInfo, PowerIntegrator, Reading, TelemetrySource

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_MOD = TelemetrySource.MODELED


@dataclass(frozen=True)
class SimProfile:
    """Parameters of a simulated device.

    Attributes:
        idle_power_w: Power at load 0, W.
        max_power_w: Power at load 1, W (>= idle_power_w).
        mem_total_bytes: Total memory, bytes.
        idle_mem_used_bytes: Memory used at load 0, bytes.
        max_mem_used_bytes: Memory used at load 1, bytes (defaults to idle_mem_used_bytes).
        clock_mhz: Reported clock in MHz, or None for `unavailable`.
        noise_std_w: Standard deviation of zero-mean Gaussian noise added to power, W (0 = none);
            power is clipped at 0.
        seed: Seed of the noise generator.
        name: Model string reported in `DeviceInfo.name`.
        update_period_s: Reported native update period, s, or None.
    """

    idle_power_w: float
    max_power_w: float
    mem_total_bytes: int
    idle_mem_used_bytes: int = 0
    max_mem_used_bytes: int | None = None
    clock_mhz: float | None = None
    noise_std_w: float = 0.0
    seed: int = 0
    name: str = "simulated"
    update_period_s: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.idle_power_w) and self.idle_power_w >= 0):
            raise ValueError(f"idle_power_w must be a finite number >= 0, got {self.idle_power_w!r}")
        if not (math.isfinite(self.max_power_w) and self.max_power_w >= self.idle_power_w):
            raise ValueError(f"max_power_w must be >= idle_power_w, got {self.max_power_w!r}")
        if self.mem_total_bytes <= 0:
            raise ValueError(f"mem_total_bytes must be > 0, got {self.mem_total_bytes!r}")
        top = self.max_mem_used_bytes if self.max_mem_used_bytes is not None else self.idle_mem_used_bytes
        if not 0 <= self.idle_mem_used_bytes <= top <= self.mem_total_bytes:
            raise ValueError("need 0 <= idle_mem_used_bytes <= max_mem_used_bytes <= mem_total_bytes")
        if not (math.isfinite(self.noise_std_w) and self.noise_std_w >= 0):
            raise ValueError(f"noise_std_w must be >= 0, got {self.noise_std_w!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SimProfile:
        """Build from a mapping; keys not among the fields are ignored (profiles hold more)."""
        names = {f.name for f in fields(cls)}
        missing = [k for k in ("idle_power_w", "max_power_w", "mem_total_bytes") if k not in data]
        if missing:
            raise ValueError(f"simulated profile lacks {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_toml(cls, path: Path) -> SimProfile:
        """Load from a TOML file: a device profile's `[sim]` table (`profiles/devices/*.toml`), else a
        `[device]` table, else top-level keys.

        Raises:
            ValueError: a device profile without a `[sim]` table, or a table that is not a valid profile.
        """
        with open(path, "rb") as f:
            data = tomllib.load(f)
        if "sim" in data:
            table = data["sim"]
        elif "device" in data:
            table = data["device"]
        elif "throughput" in data and "telemetry" in data:  # a device profile (profiles/devices.py)
            raise ValueError(f"{path}: device profile has no [sim] table to simulate it from")
        else:
            table = data
        if not isinstance(table, Mapping):
            raise ValueError(f"{path}: the simulated profile must be a table")
        return cls.from_mapping(table)


class SimulatedDevice(Device):
    """A device whose readings are computed from a profile and a load.

    Args:
        profile: A `SimProfile`, a mapping of its fields, or a path to a TOML file.
        load_fn: Returns the current load in [0, 1] (e.g. the agent's busy fraction); values outside
            are clipped, NaN counts as 0. Defaults to constant 0 (idle).
        monotonic: Clock in seconds used for integration (tests inject a fake clock).
        wall_clock: Clock for `t_unix_s`.
    """

    def __init__(
        self,
        profile: SimProfile | Mapping[str, Any] | Path | str,
        load_fn: Callable[[], float] | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(profile, (str, Path)):
            profile = SimProfile.from_toml(Path(profile))
        elif not isinstance(profile, SimProfile):
            profile = SimProfile.from_mapping(profile)
        self.profile: SimProfile = profile
        self._load_fn = load_fn or (lambda: 0.0)
        self._monotonic, self._wall_clock = monotonic, wall_clock
        self._rng = np.random.default_rng(profile.seed)
        self._lock = threading.Lock()
        self._integrator = PowerIntegrator()
        self.read()  # first integration point

    def info(self) -> DeviceInfo:
        p = self.profile
        return DeviceInfo(
            kind="simulated",
            name=p.name,
            mem_total_bytes=p.mem_total_bytes,
            sources={
                "power": _MOD,
                "energy": _MOD,
                "mem": _MOD,
                "util": _MOD,
                "clock": _MOD if p.clock_mhz is not None else TelemetrySource.UNAVAILABLE,
            },
            unavailable={} if p.clock_mhz is not None else {"clock": "profile has no clock_mhz"},
            native_update_period_s=p.update_period_s,
            notes={
                "power": "idle_power_w + (max_power_w - idle_power_w) * load"
                + (f" + N(0, {p.noise_std_w} W), seed {p.seed}" if p.noise_std_w else ""),
                "energy": "trapezoid integral of modeled power over reads",
            },
        )

    def _load(self) -> float:
        load = float(self._load_fn())
        return 0.0 if math.isnan(load) else min(max(load, 0.0), 1.0)

    def read(self) -> Reading:
        p = self.profile
        with self._lock:
            load = self._load()
            t_mono_s, t_unix_s = self._monotonic(), self._wall_clock()
            power_w = p.idle_power_w + (p.max_power_w - p.idle_power_w) * load
            if p.noise_std_w:
                power_w = max(power_w + float(self._rng.normal(0.0, p.noise_std_w)), 0.0)
            energy_j = self._integrator.add(t_mono_s, power_w)
        top = p.max_mem_used_bytes if p.max_mem_used_bytes is not None else p.idle_mem_used_bytes
        return Reading(
            t_unix_s=t_unix_s,
            t_monotonic_s=t_mono_s,
            power_w=power_w,
            power_source=_MOD,
            energy_j=energy_j,
            energy_source=_MOD,
            mem_used_bytes=int(p.idle_mem_used_bytes + (top - p.idle_mem_used_bytes) * load),
            mem_total_bytes=p.mem_total_bytes,
            mem_source=_MOD,
            util_pct=100.0 * load,
            util_source=_MOD,
            clock_mhz=p.clock_mhz,
            clock_source=_MOD if p.clock_mhz is not None else TelemetrySource.UNAVAILABLE,
            extra={"load": load},
        )
