"""The agents the daemon knows: from its static list and from registrations, with their liveness.

An agent that registered is alive while its heartbeats come: one silent for ``MISSED_INTERVALS``
heartbeat intervals is ``down``. A static agent that does not register is checked with the
standard ``grpc.health.v1`` service every interval: SERVING keeps it up, anything else puts it
down at once, and silence (checks that hang) puts it down after the same 3 intervals. Every state
change is logged and reported to ``on_change``. All methods run on the daemon's event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from orchestrator.serde import TelemetryRow

log = logging.getLogger(__name__)

UP, DOWN = "up", "down"
#: Heartbeat intervals an agent may miss before it is down.
MISSED_INTERVALS = 3


class RegistryFull(Exception):
    """``max_agents`` agents are known already."""


@dataclass(frozen=True)
class Capabilities:
    """What an agent can do, as it registered it (or as GetInfo/ListModels told a static one)."""

    device_kind: str = ""
    device_name: str = ""
    mem_total_bytes: int = 0
    telemetry_sources: tuple[tuple[str, str], ...] = ()  # (metric, source label)
    models: tuple[str, ...] = ()  # servable models in its repository
    version: str = ""
    execution_providers: tuple[str, ...] = ()

    @property
    def power_source(self) -> str:
        return dict(self.telemetry_sources).get("power", "unavailable")


@dataclass
class AgentEntry:
    """One agent and what the daemon last heard from it. Times are ``time.monotonic()`` seconds."""

    name: str
    address: str
    static: bool
    registered: bool = False
    instance_id: str = ""
    capabilities: Capabilities = field(default_factory=Capabilities)
    state: str = DOWN
    last_seen_s: float | None = None
    heartbeat_seq: int = 0
    loaded_models: set[str] = field(default_factory=set)
    queue_depth: int = 0
    power_w: float | None = None
    power_source: str = "unavailable"
    mem_used_bytes: int | None = None
    mem_total_bytes: int | None = None
    telemetry_next_seq: int = 0  # where ingest resumes; 0 = the newest sample
    telemetry_rows: int = 0
    telemetry_dropped: int = 0

    def age_s(self, now_s: float) -> float | None:
        """Seconds since the last heartbeat or successful health check; None if never seen."""
        return None if self.last_seen_s is None else now_s - self.last_seen_s

    def free_mem_bytes(self) -> int | None:
        """Free device memory from the latest telemetry (or the registered total), bytes."""
        total = self.mem_total_bytes or self.capabilities.mem_total_bytes or None
        if total is None:
            return None
        return total - (self.mem_used_bytes or 0)


#: on_change(entry, event, reason); event is "up", "down" or "restarted" (a new agent instance).
ChangeHook = Callable[[AgentEntry, str, str], None]


class Registry:
    """Agents by name.

    Args:
        heartbeat_s: the heartbeat interval assigned to agents, seconds.
        max_agents: agents known at once.
        static: (name, address) of the agents from the configuration.
        on_change: called on every state change (and when an agent restarted).
    """

    def __init__(
        self,
        heartbeat_s: float,
        max_agents: int,
        static: Iterable[tuple[str, str]] = (),
        on_change: ChangeHook | None = None,
    ) -> None:
        self.heartbeat_s = heartbeat_s
        self.max_agents = max_agents
        self._on_change = on_change or (lambda entry, event, reason: None)
        self.entries: dict[str, AgentEntry] = {n: AgentEntry(name=n, address=a, static=True) for n, a in static}

    def get(self, name: str) -> AgentEntry | None:
        return self.entries.get(name)

    def up(self) -> list[AgentEntry]:
        return [e for e in self.entries.values() if e.state == UP]

    def register(
        self,
        name: str,
        address: str,
        capabilities: Capabilities,
        instance_id: str = "",
        loaded_models: Iterable[str] = (),
    ) -> AgentEntry:
        """Add or refresh a registered agent; it is up from now on (raises RegistryFull)."""
        entry = self.entries.get(name)
        if entry is None:
            if len(self.entries) >= self.max_agents:
                raise RegistryFull(f"{self.max_agents} agents are registered already (limits.max_agents)")
            entry = self.entries[name] = AgentEntry(name=name, address=address, static=False)
        if entry.address != address:
            log.warning("agent %s moved from %s to %s", name, entry.address, address)
            entry.address = address
        restarted = bool(entry.instance_id) and entry.instance_id != instance_id
        entry.registered, entry.instance_id, entry.capabilities = True, instance_id, capabilities
        entry.heartbeat_seq, entry.last_seen_s = 0, time.monotonic()
        entry.loaded_models = set(loaded_models)
        log.info(
            "agent %s registered from %s (%s, %d models)",
            name,
            address,
            capabilities.device_kind,
            len(capabilities.models),
        )
        if restarted:
            entry.telemetry_next_seq = 0  # a new process numbers its samples from 1 again
            self._on_change(entry, "restarted", "registered as a new instance")
        self._set(entry, UP, "registered")
        return entry

    def heartbeat(self, name: str, seq: int, loaded_models: Sequence[str], queue_depth: int) -> bool:
        """Record a heartbeat; False when the agent is not registered (it must register again)."""
        entry = self.entries.get(name)
        if entry is None or not entry.registered:
            return False
        if seq <= entry.heartbeat_seq:
            log.debug("agent %s: heartbeat %d after %d (out of order)", name, seq, entry.heartbeat_seq)
        entry.heartbeat_seq, entry.last_seen_s = seq, time.monotonic()
        entry.loaded_models, entry.queue_depth = set(loaded_models), queue_depth
        self._set(entry, UP, f"heartbeat {seq}")
        return True

    def health_result(
        self,
        name: str,
        serving: bool,
        loaded_models: Iterable[str] | None = None,
        capabilities: Capabilities | None = None,
    ) -> None:
        """Record a health check of a static agent (ignored once the agent registered itself)."""
        entry = self.entries.get(name)
        if entry is None or entry.registered:
            return
        if not serving:
            self._set(entry, DOWN, "health check failed")
            return
        entry.last_seen_s = time.monotonic()
        if loaded_models is not None:
            entry.loaded_models = set(loaded_models)
        if capabilities is not None:
            entry.capabilities = capabilities
        self._set(entry, UP, "health check SERVING")

    def unreachable(self, name: str, reason: str) -> None:
        """An RPC found the agent unavailable: down until its next heartbeat or health check."""
        entry = self.entries.get(name)
        if entry is not None:
            self._set(entry, DOWN, reason)

    def telemetry(self, name: str, rows: Sequence[TelemetryRow]) -> None:
        """Keep the newest sample's power, memory and queue depth."""
        entry = self.entries.get(name)
        if entry is None or not rows:
            return
        newest = rows[-1]
        entry.power_w, entry.power_source = newest.power_w, newest.power_source
        entry.mem_used_bytes, entry.mem_total_bytes = newest.mem_used_bytes, newest.mem_total_bytes
        entry.queue_depth = newest.queue_depth

    def evaluate(self, now_s: float | None = None) -> None:
        """Put down every up agent silent for more than ``MISSED_INTERVALS`` intervals."""
        now_s = time.monotonic() if now_s is None else now_s
        limit_s = MISSED_INTERVALS * self.heartbeat_s
        for entry in self.entries.values():
            age_s = entry.age_s(now_s)
            if entry.state == UP and (age_s is None or age_s > limit_s):
                what = "heartbeat" if entry.registered else "successful health check"
                self._set(
                    entry, DOWN, f"no {what} for {age_s or 0:.2f} s (> {MISSED_INTERVALS} x {self.heartbeat_s:g} s)"
                )

    def _set(self, entry: AgentEntry, state: str, reason: str) -> None:
        if entry.state == state:
            return
        entry.state = state
        (log.info if state == UP else log.warning)("agent %s (%s) is %s: %s", entry.name, entry.address, state, reason)
        self._on_change(entry, state, reason)
