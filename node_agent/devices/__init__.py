"""Device backends of the node agent and the probing factory.

`probe_device("auto")` tries, in order:

1. `nvidia`: NVML initialises and GPU `gpu_index` answers at least one query. If it measures neither
   power nor energy (e.g. a Jetson Thor where NVML gives load/memory only) and a Jetson INA3221 is
   found, the Jetson backend wins.
2. `jetson`: an INA3221 sensor with at least one readable rail exists under `sysfs_root`.
3. `cpu`: always (psutil); power/energy from RAPL when readable, else `unavailable`.
4. an `EmptyDevice` (everything `unavailable`, with the reason) if even that fails.

Explicit kinds (`nvidia`, `jetson`, `cpu`, `simulated`) raise `DeviceUnavailable` with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from node_agent.devices.base import (
    Device,
    DeviceError,
    DeviceInfo,
    DeviceUnavailable,
    EmptyDevice,
    Opener,
    Reading,
    TelemetrySource,
    default_opener,
)

__all__ = [
    "KINDS",
    "Device",
    "DeviceError",
    "DeviceInfo",
    "DeviceUnavailable",
    "EmptyDevice",
    "Reading",
    "TelemetrySource",
    "available_kinds",
    "probe_device",
]

_log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("auto", "nvidia", "jetson", "cpu", "simulated", "none")


def _open(
    kind: str,
    *,
    sysfs_root: Path,
    nvml_module: Any | None,
    gpu_index: int,
    sim_profile: Any | None,
    load_fn: Callable[[], float] | None,
    opener: Opener,
) -> Device:
    if kind == "nvidia":
        from node_agent.devices.nvidia import NvidiaDevice

        return NvidiaDevice(gpu_index, nvml_module=nvml_module)
    if kind == "jetson":
        from node_agent.devices.jetson import JetsonDevice

        return JetsonDevice(sysfs_root=sysfs_root, opener=opener)
    if kind == "cpu":
        from node_agent.devices.cpu import CpuDevice

        try:
            return CpuDevice(sysfs_root=sysfs_root, rapl_opener=opener)
        except (ImportError, OSError, RuntimeError) as exc:
            raise DeviceUnavailable(f"psutil cannot read this host: {exc}") from exc
    if kind == "simulated":
        from node_agent.devices.simulated import SimulatedDevice

        if sim_profile is None:
            raise DeviceUnavailable("kind 'simulated' needs sim_profile (a mapping or a TOML path)")
        try:
            return SimulatedDevice(sim_profile, load_fn)
        except (OSError, ValueError, TypeError) as exc:
            raise DeviceUnavailable(f"simulated profile rejected: {exc}") from exc
    if kind == "none":
        return EmptyDevice("device kind 'none' requested")
    raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")


def probe_device(
    kind: str = "auto",
    *,
    sysfs_root: Path = Path("/"),
    nvml_module: Any | None = None,
    gpu_index: int = 0,
    sim_profile: Mapping[str, Any] | Path | str | None = None,
    load_fn: Callable[[], float] | None = None,
    opener: Opener = default_opener,
) -> Device:
    """Open the device of `kind`, or probe for the best one with `auto`.

    Args:
        kind: One of `KINDS`.
        sysfs_root: Root of the file system holding `sys/` and `proc/` (tests pass a fake tree).
        nvml_module: A `pynvml` stand-in (tests); the real module is imported lazily if None.
        gpu_index: NVML index of the GPU to measure.
        sim_profile: Profile of the simulated device (mapping, `SimProfile` or TOML path).
        load_fn: Load in [0, 1] driving the simulated device.
        opener: File opener for sysfs reads (tests inject `PermissionError` / read errors).

    Raises:
        DeviceUnavailable: An explicit kind is not present (the message says why).
        ValueError: Unknown kind.
    """
    args: dict[str, Any] = {
        "sysfs_root": sysfs_root,
        "nvml_module": nvml_module,
        "gpu_index": gpu_index,
        "sim_profile": sim_profile,
        "load_fn": load_fn,
        "opener": opener,
    }
    if kind != "auto":
        return _open(kind, **args)
    reasons: list[str] = []
    gpu: Device | None = None
    try:
        gpu = _open("nvidia", **args)
    except DeviceUnavailable as exc:
        reasons.append(f"nvidia: {exc}")
    if gpu is not None and not {"power", "energy"} <= set(gpu.info().unavailable):
        _log.info("telemetry device: nvidia (%s)", gpu.info().name)
        return gpu
    try:
        jetson = _open("jetson", **args)
    except DeviceUnavailable as exc:
        reasons.append(f"jetson: {exc}")
    else:
        if gpu is not None:
            gpu.close()
        _log.info("telemetry device: jetson (%s); %s", jetson.info().name, "; ".join(reasons))
        return jetson
    if gpu is not None:
        _log.info("telemetry device: nvidia without power (%s)", gpu.info().name)
        return gpu
    try:
        cpu = _open("cpu", **args)
    except DeviceUnavailable as exc:
        reasons.append(f"cpu: {exc}")
        _log.warning("no telemetry device: %s", "; ".join(reasons))
        return EmptyDevice("; ".join(reasons))
    _log.info("telemetry device: cpu (%s); %s", cpu.info().name, "; ".join(reasons))
    return cpu


def available_kinds(
    *,
    sysfs_root: Path = Path("/"),
    nvml_module: Any | None = None,
    gpu_index: int = 0,
    sim_profile: Mapping[str, Any] | Path | str | None = None,
    opener: Opener = default_opener,
) -> dict[str, str | None]:
    """Try every concrete kind once (opening and closing it).

    Returns:
        Kind -> None if it opens here, else the reason it does not.
    """
    out: dict[str, str | None] = {}
    for kind in ("nvidia", "jetson", "cpu", "simulated"):
        try:
            device = probe_device(
                kind,
                sysfs_root=sysfs_root,
                nvml_module=nvml_module,
                gpu_index=gpu_index,
                sim_profile=sim_profile,
                opener=opener,
            )
        except DeviceUnavailable as exc:
            out[kind] = str(exc)
        else:
            device.close()
            out[kind] = None
    return out
