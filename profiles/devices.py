"""Device profiles (``profiles/devices/*.toml``): what a class of edge box is, with public sources.

A device profile states the vendor figures of one device class — memory, power envelope and modes,
how its power is measured (Jetson INA3221 rails, NVML capabilities, RAPL) and a peak throughput
figure — each with its source in a TOML comment. It is *data about the hardware*, not a
measurement: measured latency/energy live in the model profiles (``profiles/models/*/profile-*.toml``).

The scaling rule: :func:`throughput_ratio` is the ratio of peak dense FP32 throughput,
``target.fp32_gflops / source.fp32_gflops``. It is an ESTIMATE (peak FLOPS say nothing about
memory bandwidth, kernels or runtime); whatever it produces must be labelled as estimated.

The optional ``[sim]`` table holds the parameters of the node agent's ``simulated`` device backend
(``node_agent.devices.simulated.SimProfile``), which reads it with plain ``tomllib``; a profile
has one only where its idle and loaded power have a source.

This module depends on pydantic only (no ``node_agent``, ``orchestrator``, torch or onnxruntime).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from profiles.scenario import describe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEVICES_DIR = Path(__file__).resolve().parent / "devices"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_MODE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

Watts = Annotated[StrictFloat, Field(ge=0, le=100_000)]
Bytes = Annotated[StrictInt, Field(gt=0, le=2**60)]


class DeviceProfileError(ValueError):
    """A device profile is invalid; the message names the file (when from one) and each bad field."""


def _as_tuple(value: object) -> object:
    """One string -> a 1-tuple; lists pass through (validated as tuples of strings)."""
    return (value,) if isinstance(value, str) else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Throughput(_Strict):
    """Attributes:
    fp32_gflops: peak dense FP32, GFLOP/s (cores x clock x 2 FLOP per FMA); the scaling rule uses it.
    fp16_gflops: peak dense FP16, GFLOP/s; the file's comment says which unit (Tensor or CUDA cores).
    int8_tops: peak INT8, TOP/s, as the vendor states it (the comment says GPU only or module total).
    int8_sparse: True when ``int8_tops`` counts 2:4 structured sparsity (then dense is half).
    basis: how ``fp32_gflops`` was derived, e.g. ``"1024 CUDA cores x 625 MHz x 2 FLOP/FMA"``.
    """

    fp32_gflops: StrictFloat = Field(gt=0, le=1e9)
    fp16_gflops: StrictFloat | None = Field(None, gt=0, le=1e9)
    int8_tops: StrictFloat | None = Field(None, gt=0, le=1e6)
    int8_sparse: StrictBool | None = None
    basis: StrictStr = Field(min_length=1, max_length=500)


class PowerMode(_Strict):
    """One nvpmodel mode. Attributes: id (``nvpmodel -m <id>``), name (as ``nvpmodel -q`` prints
    it), budget_w (the mode's power budget, W; None = uncapped, e.g. MAXN)."""

    id: StrictInt = Field(ge=0, le=255)
    name: StrictStr = Field(pattern=_MODE)
    budget_w: Watts | None = None


class Power(_Strict):
    """Attributes:
    idle_w: power at rest, W, only where a source or measurement exists.
    max_w: the device's power envelope, W: highest mode budget (Jetson), board power limit (GPU),
        or the machine's share of the package TDP (CPU slice; see ``tdp_w``).
    tdp_w: vendor TDP of the whole package/card, W, where it differs from ``max_w``.
    default_mode: name of the mode the device boots in (one of ``modes``).
    modes: nvpmodel modes (Jetson); empty for others.
    """

    idle_w: Watts | None = None
    max_w: Annotated[StrictFloat, Field(gt=0, le=100_000)]
    tdp_w: Watts | None = None
    default_mode: StrictStr | None = None
    modes: tuple[PowerMode, ...] = Field((), max_length=64)


class Ina3221(_Strict):
    """Jetson INA3221 power monitor (HARDWARE.md §1).

    Attributes:
        hwmon_name: content of the hwmon ``name`` file.
        layout: sysfs path pattern(s): JetPack 5+ hwmon and/or JetPack 4 iio (one string or a list).
        rails: channel labels on this module (``NC``/disabled channels left out).
        total_rail: the rail that is the module's total input power, where one exists.
        total_sum_rails: rails whose sum is the total, where no parent rail exists (AGX Orin).
        i2c_devices: ``<bus>-<addr>`` seen or expected for the chip(s); readers must still glob.
    """

    hwmon_name: StrictStr = Field("ina3221", min_length=1, max_length=64)
    layout: Annotated[tuple[StrictStr, ...], BeforeValidator(_as_tuple)] = Field(min_length=1, max_length=8)
    rails: tuple[StrictStr, ...] = Field(min_length=1, max_length=16)
    total_rail: StrictStr | None = None
    total_sum_rails: tuple[StrictStr, ...] = Field((), max_length=16)
    i2c_devices: tuple[StrictStr, ...] = Field((), max_length=8)


class Nvml(_Strict):
    """Which NVML queries return data on this device (HARDWARE.md §3); all False where NVML is
    unusable (Jetson). Attributes: power_usage (``nvmlDeviceGetPowerUsage``), total_energy
    (``nvmlDeviceGetTotalEnergyConsumption``, Volta+), memory_info, utilization, clocks."""

    power_usage: StrictBool
    total_energy: StrictBool
    memory_info: StrictBool
    utilization: StrictBool
    clocks: StrictBool


class Rapl(_Strict):
    """Intel/AMD RAPL via powercap (HARDWARE.md §2). Attributes: domains (zone ``name`` values the
    CPU class has), exposed (whether this machine class shows them in ``/sys/class/powercap``)."""

    domains: tuple[StrictStr, ...] = Field(min_length=1, max_length=16)
    exposed: StrictBool


class Telemetry(_Strict):
    """Attributes: power_source (the label the agent's readings carry), and the table for the kind:
    ``ina3221`` (jetson), ``nvml`` (nvidia; a jetson may list it to record that it is unusable),
    ``rapl`` (cpu)."""

    power_source: Literal["jetson-ina3221", "nvml", "rapl", "unavailable"]
    ina3221: Ina3221 | None = None
    nvml: Nvml | None = None
    rapl: Rapl | None = None


class Sim(_Strict):
    """Parameters of the agent's ``simulated`` backend (fields of ``SimProfile``; see its docstring)."""

    idle_power_w: Watts
    max_power_w: Watts
    mem_total_bytes: Bytes
    idle_mem_used_bytes: Annotated[StrictInt, Field(ge=0, le=2**60)] = 0
    max_mem_used_bytes: Annotated[StrictInt, Field(ge=0, le=2**60)] | None = None
    clock_mhz: StrictFloat | None = Field(None, gt=0, le=100_000)
    noise_std_w: Watts = 0.0
    seed: StrictInt = Field(0, ge=0, le=2**63 - 1)
    name: StrictStr = Field("simulated", min_length=1, max_length=128)
    update_period_s: StrictFloat | None = Field(None, gt=0, le=3600)


_KIND_TABLE = {"jetson": "ina3221", "nvidia": "nvml", "cpu": "rapl"}
_SOURCE_TABLE = {"jetson-ina3221": "ina3221", "nvml": "nvml", "rapl": "rapl"}


class DeviceProfile(_Strict):
    """A whole device profile file (see the module docstring and ``profiles/devices/*.toml``).

    Attributes:
        schema_version: file format version (TOML key ``schema``), 1.
        name: the file's stem.
        kind: ``jetson``, ``nvidia`` (discrete GPU) or ``cpu``.
        description: what the profile describes, in a sentence or two.
        mem_total_bytes: memory models run in (module DRAM, GPU memory, or the machine's RAM), bytes.
        unified_memory: True when that memory is the host's system RAM (Jetson iGPU, CPU-only).
        mem_bandwidth_gb_s: vendor peak memory bandwidth, GB/s (10^9 bytes/s), where sourced.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)

    schema_version: Literal[1] = Field(alias="schema")
    name: StrictStr = Field(pattern=_NAME)
    kind: Literal["jetson", "nvidia", "cpu"]
    description: StrictStr = Field(min_length=1, max_length=2000)
    mem_total_bytes: Bytes
    unified_memory: StrictBool
    mem_bandwidth_gb_s: StrictFloat | None = Field(None, gt=0, le=1e6)
    throughput: Throughput
    power: Power
    telemetry: Telemetry
    sim: Sim | None = None

    @property
    def fp32_gflops(self) -> float:
        """Peak dense FP32 throughput, GFLOP/s (the figure the scaling rule uses)."""
        return self.throughput.fp32_gflops

    @model_validator(mode="after")
    def _consistent(self) -> DeviceProfile:
        problems = _power_problems(self.power) + _telemetry_problems(self.kind, self.telemetry)
        problems += _sim_problems(self.sim, self.mem_total_bytes, self.power.max_w)
        if self.throughput.int8_sparse is not None and self.throughput.int8_tops is None:
            problems.append("throughput.int8_sparse: set without throughput.int8_tops")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def build(cls, **values: object) -> DeviceProfile:
        """Validate ``values``; raises DeviceProfileError whose message names each bad field."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise DeviceProfileError(describe(exc)) from exc

    @classmethod
    def load(cls, path: Path | str) -> DeviceProfile:
        """Read and validate a device profile file; its ``name`` must equal the file's stem.

        Raises:
            DeviceProfileError: unreadable file, unknown key, wrong type, invalid or inconsistent
                value; the message starts with the file and names the field
                (``jetson-orin-nano.toml: power.idle_w: must be <= power.max_w (15)``).
        """
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise DeviceProfileError(f"{path}: {exc}") from exc
        try:
            profile = cls.build(**data)
        except DeviceProfileError as exc:
            raise DeviceProfileError(f"{path}: {exc}") from exc
        if profile.name != path.stem:
            raise DeviceProfileError(
                f"{path}: name: must equal the file name stem {path.stem!r} (got {profile.name!r})"
            )
        return profile


def _power_problems(power: Power) -> list[str]:
    out = []
    if power.idle_w is not None and power.idle_w > power.max_w:
        out.append(f"power.idle_w: must be <= power.max_w ({power.max_w:g}) (got {power.idle_w:g})")
    ids, names = [m.id for m in power.modes], [m.name for m in power.modes]
    for i, mode in enumerate(power.modes):
        if mode.budget_w is not None and mode.budget_w > power.max_w:
            out.append(f"power.modes.{i}.budget_w: must be <= power.max_w ({power.max_w:g}) (got {mode.budget_w:g})")
        if ids.count(mode.id) > 1 and ids.index(mode.id) == i:
            out.append(f"power.modes.{i}.id: {mode.id} appears more than once")
        if names.count(mode.name) > 1 and names.index(mode.name) == i:
            out.append(f"power.modes.{i}.name: {mode.name!r} appears more than once")
    if power.default_mode is not None and power.default_mode not in names:
        out.append(f"power.default_mode: must name one of power.modes (got {power.default_mode!r})")
    return out


def _telemetry_problems(kind: str, t: Telemetry) -> list[str]:
    out = []
    needed = _KIND_TABLE[kind]
    if getattr(t, needed) is None:
        out.append(f"telemetry.{needed}: required for kind {kind!r}")
    for table in ("ina3221", "rapl"):
        if table != needed and getattr(t, table) is not None:
            out.append(f"telemetry.{table}: not for kind {kind!r}")
    if kind == "cpu" and t.nvml is not None:
        out.append("telemetry.nvml: not for kind 'cpu'")
    source_table = _SOURCE_TABLE.get(t.power_source)
    if source_table is not None and source_table != needed:
        out.append(f"telemetry.power_source: {t.power_source!r} does not fit kind {kind!r} (expected {needed!r})")
    want = "rapl" if t.rapl is not None and t.rapl.exposed else "unavailable"
    if t.rapl is not None and kind == "cpu" and t.power_source != want:
        out.append(f"telemetry.power_source: must be {want!r} when telemetry.rapl.exposed is {t.rapl.exposed}")
    nvml_power = t.nvml is not None and (t.nvml.power_usage or t.nvml.total_energy)
    if kind == "nvidia" and t.nvml is not None and t.power_source == "nvml" and not nvml_power:
        out.append("telemetry.power_source: 'nvml' needs nvml.power_usage or nvml.total_energy")
    if t.ina3221 is not None:
        out += _ina_problems(t.ina3221)
    return out


def _ina_problems(ina: Ina3221) -> list[str]:
    out = []
    if (ina.total_rail is None) == (not ina.total_sum_rails):
        out.append("telemetry.ina3221: give exactly one of total_rail and total_sum_rails")
    if ina.total_rail is not None and ina.total_rail not in ina.rails:
        out.append(f"telemetry.ina3221.total_rail: must be one of rails (got {ina.total_rail!r})")
    for rail in ina.total_sum_rails:
        if rail not in ina.rails:
            out.append(f"telemetry.ina3221.total_sum_rails: {rail!r} is not one of rails")
    for rail in dict.fromkeys(ina.rails):
        if ina.rails.count(rail) > 1:
            out.append(f"telemetry.ina3221.rails: {rail!r} appears more than once")
    return out


def _sim_problems(sim: Sim | None, mem_total_bytes: int, max_w: float) -> list[str]:
    if sim is None:
        return []
    out = []
    if sim.idle_power_w > sim.max_power_w:
        out.append(f"sim.idle_power_w: must be <= sim.max_power_w ({sim.max_power_w:g}) (got {sim.idle_power_w:g})")
    if sim.max_power_w > max_w:
        out.append(f"sim.max_power_w: must be <= power.max_w ({max_w:g}) (got {sim.max_power_w:g})")
    if sim.mem_total_bytes > mem_total_bytes:
        out.append(f"sim.mem_total_bytes: must be <= mem_total_bytes ({mem_total_bytes}) (got {sim.mem_total_bytes})")
    top = sim.max_mem_used_bytes if sim.max_mem_used_bytes is not None else sim.idle_mem_used_bytes
    if sim.idle_mem_used_bytes > top:
        out.append("sim.idle_mem_used_bytes: must be <= sim.max_mem_used_bytes")
    if top > sim.mem_total_bytes:
        out.append(f"sim.max_mem_used_bytes: must be <= sim.mem_total_bytes ({sim.mem_total_bytes}) (got {top})")
    return out


def load_device(name_or_path: str | Path) -> DeviceProfile:
    """A shipped device profile by name (``"jetson-orin-nano"``), or a device profile file by path."""
    path = Path(name_or_path)
    if path.suffix != ".toml" and re.match(_NAME, str(name_or_path)):
        path = DEVICES_DIR / f"{name_or_path}.toml"
    return DeviceProfile.load(path)


def shipped_devices() -> list[str]:
    """Names of the shipped device profiles, sorted."""
    return sorted(p.stem for p in DEVICES_DIR.glob("*.toml"))


def throughput_ratio(source: DeviceProfile, target: DeviceProfile) -> float:
    """How many times faster ``target`` is than ``source``: an ESTIMATE, the ratio of peak dense FP32.

    Returns ``target.fp32_gflops / source.fp32_gflops``. Label whatever it scales as estimated.
    """
    return target.fp32_gflops / source.fp32_gflops
