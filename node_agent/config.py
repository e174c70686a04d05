"""Agent settings: one validated dataclass, filled from command-line flags or a TOML file."""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEVICE_KINDS = ("auto", "cpu", "nvidia", "jetson", "simulated")
#: The models shipped with edgetb (inside the installed ``profiles`` package).
SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "profiles" / "models"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: The largest emulated WAN delay an agent may add, mean + 3 x jitter, in milliseconds.
MAX_EMULATED_DELAY_MS = 10_000.0


class ConfigError(ValueError):
    """A setting is invalid; the message names the setting (and the file, when from one)."""


@dataclass(frozen=True)
class AgentConfig:
    """Everything an agent needs to run.

    Attributes:
        name: the agent's name, reported in every response and telemetry batch.
        listen: HOST:PORT to bind; port 0 picks a free one. Loopback unless told otherwise.
        models: the model repository folder (default: the models shipped with edgetb).
        device: telemetry/execution device: auto, cpu, nvidia, jetson or simulated.
        telemetry_hz: sampler rate, 1..100 Hz.
        telemetry_capacity: samples kept in the in-memory log (older ones are dropped, and the
            stream reports how many a client missed).
        queue_capacity: requests waiting per loaded model; beyond it RESOURCE_EXHAUSTED.
        max_message_bytes: largest request or response message; beyond it RESOURCE_EXHAUSTED.
        max_concurrent_rpcs: RPCs handled at once; beyond it RESOURCE_EXHAUSTED.
        intra_op_threads: ONNX Runtime threads per session; 0 lets ONNX Runtime choose.
        sim_profile: device profile TOML for the simulated device.
        preload: models to load at start.
        emulated_delay_ms: mean (before truncation) of an *emulated* WAN round-trip delay added to every Generate /
            ModelInfer response (a `cloud` agent behind a wide-area network), in milliseconds; 0 with
            zero jitter = none. Labelled as emulated wherever it is reported; see
            :class:`node_agent.generation.EmulatedDelay` for what it models.
        emulated_delay_jitter_ms: standard deviation of that delay (normal, truncated at 3 standard
            deviations and at 0), in milliseconds. ``emulated_delay_ms + 3 * jitter`` must not
            exceed 10 000 ms.
        emulated_delay_seed: seed of the delay draws; the same seed gives the same sequence of delays.
        sim_seed: seed of the simulated device's modeled compute times (see :mod:`node_agent.sim_timing`:
            used when ``sim_profile`` is a named device profile and a model has a ``profile-<device>.toml``);
            the same seed gives the same sequence of draws.
        orchestrator: HOST:PORT of the orchestrator daemon to register with and heartbeat to;
            None: the agent does not register (an orchestrator may still list it statically).
        heartbeat_s: heartbeat interval in seconds, 0.05..60, used until the orchestrator assigns
            one at registration.
    """

    name: str = "edge"
    listen: str = "127.0.0.1:50061"
    models: Path = SHIPPED_MODELS
    device: str = "auto"
    telemetry_hz: float = 10.0
    telemetry_capacity: int = 36_000
    queue_capacity: int = 16
    max_message_bytes: int = 4 * 1024 * 1024
    max_concurrent_rpcs: int = 256
    intra_op_threads: int = 0
    sim_profile: Path | None = None
    preload: tuple[str, ...] = ()
    emulated_delay_ms: float = 0.0
    emulated_delay_jitter_ms: float = 0.0
    emulated_delay_seed: int = 0
    sim_seed: int = 0
    orchestrator: str | None = None
    heartbeat_s: float = 2.0

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"name: '{self.name}' must match {_NAME.pattern}")
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ConfigError(f"listen: '{self.listen}' is not HOST:PORT")
        if self.device not in DEVICE_KINDS:
            raise ConfigError(f"device: '{self.device}' is not one of {', '.join(DEVICE_KINDS)}")
        if not 1.0 <= self.telemetry_hz <= 100.0:
            raise ConfigError(f"telemetry_hz: {self.telemetry_hz} is outside 1..100")
        for key, low, high in (
            ("telemetry_capacity", 100, 10_000_000),
            ("queue_capacity", 1, 100_000),
            ("max_message_bytes", 1024, 1 << 30),
            ("max_concurrent_rpcs", 1, 100_000),
            ("intra_op_threads", 0, 1024),
        ):
            value = getattr(self, key)
            if not low <= value <= high:
                raise ConfigError(f"{key}: {value} is outside {low}..{high}")
        for key in ("emulated_delay_ms", "emulated_delay_jitter_ms"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{key}: {value!r} is not a finite number of milliseconds")
            if not 0.0 <= value <= MAX_EMULATED_DELAY_MS:
                raise ConfigError(f"{key}: {value} is outside 0..{MAX_EMULATED_DELAY_MS:g} ms")
        largest_ms = self.emulated_delay_ms + 3.0 * self.emulated_delay_jitter_ms
        if largest_ms > MAX_EMULATED_DELAY_MS:
            raise ConfigError(
                f"emulated_delay_jitter_ms: the largest delay, emulated_delay_ms + 3 x jitter = {largest_ms:g} ms, "
                f"exceeds {MAX_EMULATED_DELAY_MS:g} ms"
            )
        for key in ("emulated_delay_seed", "sim_seed"):
            seed = getattr(self, key)
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ConfigError(f"{key}: {seed!r} is not an integer")
            if not 0 <= seed < 2**63:
                raise ConfigError(f"{key}: {seed} is outside 0..2^63-1")
        if self.orchestrator is not None:
            o_host, o_sep, o_port = str(self.orchestrator).rpartition(":")
            if not o_sep or not o_host or not o_port.isdigit() or not 0 < int(o_port) <= 65535:
                raise ConfigError(f"orchestrator: '{self.orchestrator}' is not HOST:PORT")
        if isinstance(self.heartbeat_s, bool) or not isinstance(self.heartbeat_s, (int, float)):
            raise ConfigError(f"heartbeat_s: {self.heartbeat_s!r} is not a number of seconds")
        if not 0.05 <= self.heartbeat_s <= 60.0:
            raise ConfigError(f"heartbeat_s: {self.heartbeat_s} is outside 0.05..60 s")
        if self.device == "simulated" and self.sim_profile is None:
            raise ConfigError("sim_profile: the simulated device needs a device profile file")

    @classmethod
    def from_toml(cls, path: Path, **overrides: object) -> AgentConfig:
        """Read ``[agent]`` (or top-level) settings from a TOML file; ``overrides`` win.

        Raises:
            ConfigError: unknown key, wrong type or invalid value, naming the file and the key.
        """
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        table = data.get("agent", data)
        known = {f.name for f in fields(cls)}
        for key in table:
            if key not in known:
                raise ConfigError(f"{path}: {key}: unknown setting; known: {', '.join(sorted(known))}")
        values: dict[str, object] = dict(table)
        for key in ("models", "sim_profile"):
            if key in values:
                values[key] = (path.parent / str(values[key])).resolve()
        if "preload" in values:
            values["preload"] = tuple(values["preload"])  # type: ignore[arg-type]
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        except TypeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc

    def with_port(self, port: int) -> AgentConfig:
        """A copy listening on ``port`` of the same host."""
        host = self.listen.rpartition(":")[0]
        return replace(self, listen=f"{host}:{port}")
