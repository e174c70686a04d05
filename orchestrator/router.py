"""Routing of submitted requests to agents: the one place that decides where a request runs.

``Router.choose`` picks the agent: among up agents that have the model loaded, the one with the
lowest queue depth (then fewest requests in flight from the daemon); if none has it loaded, the up
agent with the model in its repository and the most free memory, on which it is loaded first.
``Router.submit`` runs the request there with its deadline and retries once on another agent when
the first is unavailable, overloaded or lost the model; otherwise it fails explicitly. Every
request, served or not, is written to the store. With a policy loop (``[policy]``), its allocation
policy replaces ``choose`` (agent and steps), it sees every request and scores every served one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import grpc
import numpy as np

from orchestrator.agent_link import AgentLink
from orchestrator.config import Limits
from orchestrator.metrics import Metrics
from orchestrator.policies.base import Allocation, NoAgent
from orchestrator.radio import SNR_MAX_DB, SNR_MIN_DB
from orchestrator.registry import UP, AgentEntry, Registry
from orchestrator.store import RequestRecord, Store
from orchestrator.utility import MAX_WEIGHT

log = logging.getLogger(__name__)

#: Agent errors after which the request is tried once on another agent.
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,  # down, unreachable or shutting down
        grpc.StatusCode.CANCELLED,  # the agent stopped while the request was queued
        grpc.StatusCode.RESOURCE_EXHAUSTED,  # its queue is full
        grpc.StatusCode.FAILED_PRECONDITION,  # the model was unloaded meanwhile, or failed to load
    }
)
MAX_ATTEMPTS = 2
MIN_LEFT_S = 1e-3
"""the least time left a policy is told of (a request past its limit fails at ``_run_on``)"""
_MAX_ID_CHARS = 128


class RouteError(Exception):
    """A request that could not be served: a gRPC status code and a message naming the cause."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SubmitSpec:
    """A submitted request: one image of class ``label``. ``deadline_s`` 0 = the default limit."""

    request_id: str
    model: str
    label: int
    steps: int | None = None
    quality_floor: float | None = None
    deadline_s: float = 0.0
    seed: int = 0
    snr_db: float | None = None  # the user's downlink SNR, dB (a radio downlink needs it)
    w_latency: float | None = None  # the user's utility lost per s of latency (None: the [policy] weight)
    w_energy: float | None = None  # the user's utility lost per J (None: the [policy] weight)


@dataclass(frozen=True)
class Routed:
    """A served request: the image, where it ran and what was measured."""

    request_id: str
    model: str
    agent: str
    image: np.ndarray  # [C, H, W]
    steps: int
    steps_source: str  # "request" | "model-default"
    latency_s: float
    agent_time_s: float
    queue_time_s: float
    compute_time_s: float
    energy_j: float | None
    energy_source: str
    attempts: int
    loaded_model: bool
    quality: float | None = None
    downlink_s: float = 0.0  # emulated radio transmission, s (in latency_s); 0 without a radio
    bandwidth_share: float | None = None  # share of the downlink band; None without a radio


@dataclass(frozen=True)
class Choice:
    """Where to run a request; ``load``: load the model there first; ``steps``: set by a policy."""

    entry: AgentEntry
    load: bool
    steps: int | None = None


class PolicyHook(Protocol):
    """What the router asks of the policy loop (``orchestrator.policy_loop.PolicyLoop``)."""

    def observe(self, model: str) -> None: ...

    def allocate(self, spec: SubmitSpec, exclude: frozenset[str]) -> Allocation | None: ...

    async def score(self, spec: SubmitSpec, routed: Routed) -> Routed: ...

    def fail(self, spec: SubmitSpec, outcome: str, latency_s: float) -> None: ...


class Router:
    """Routes requests over the registry's up agents.

    Args:
        registry: the agents.
        link: the connection to an agent.
        store: receives one row per request.
        metrics: latency, energy, outcomes, loads, retries.
        limits: in-flight and deadline limits.
    """

    def __init__(
        self,
        registry: Registry,
        link: Callable[[AgentEntry], AgentLink],
        store: Store,
        metrics: Metrics,
        limits: Limits,
    ) -> None:
        self.registry = registry
        self.link = link
        self.store = store
        self.metrics = metrics
        self.limits = limits
        self.outcomes: Counter[str] = Counter()
        self.loads = 0
        self.inflight: Counter[str] = Counter()  # requests in flight per agent
        self._inflight_total = 0
        self._load_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.policy: PolicyHook | None = None  # set by the daemon when ``[policy]`` is configured

    def choose(self, model: str, exclude: frozenset[str] = frozenset()) -> Choice:
        """Where ``model`` should run; raises RouteError UNAVAILABLE/NOT_FOUND when nowhere."""
        up = [e for e in self.registry.up() if e.name not in exclude]
        if not up:
            raise RouteError(
                grpc.StatusCode.UNAVAILABLE, "no agent is up" + (f" besides {sorted(exclude)}" if exclude else "")
            )
        holders = [e for e in up if model in e.loaded_models]
        if holders:
            return Choice(self._least_busy(holders), load=False)
        # a burst for an unloaded model waits for the load already under way, wherever memory now looks freer
        loading = [e for e in up if self._loading(e.name, model)]
        if loading:
            return Choice(self._least_busy(loading), load=True)
        able = [e for e in up if model in e.capabilities.models]
        if not able:
            raise RouteError(
                grpc.StatusCode.NOT_FOUND,
                f"model: '{model}' is in no up agent's repository ({', '.join(e.name for e in up)})",
            )
        return Choice(min(able, key=lambda e: (-(e.free_mem_bytes() or 0), e.queue_depth, e.name)), load=True)

    def _least_busy(self, entries: list[AgentEntry]) -> AgentEntry:
        """The entry with the shortest queue, then the fewest requests of ours in flight, then by name."""
        return min(entries, key=lambda e: (e.queue_depth, self.inflight[e.name], e.name))

    def _loading(self, agent: str, model: str) -> bool:
        """Whether this router is loading ``model`` on ``agent`` now."""
        lock = self._load_locks.get((agent, model))
        return lock is not None and lock.locked()

    async def submit(self, spec: SubmitSpec, grpc_remaining_s: float | None = None) -> Routed:
        """Serve ``spec`` and record it; raises RouteError (also recorded) when it cannot be served.

        Args:
            spec: the request.
            grpc_remaining_s: the caller's own gRPC deadline, seconds from now, if it set one.
        """
        t0_s, submitted_unix_s = time.monotonic(), time.time()
        spec = replace(spec, deadline_s=spec.deadline_s or self.limits.default_deadline_s)
        deadline_s = spec.deadline_s if grpc_remaining_s is None else min(spec.deadline_s, grpc_remaining_s)
        record = RequestRecord(
            request_id=spec.request_id, model=spec.model, label=spec.label, steps_requested=spec.steps,
            quality_floor=spec.quality_floor, deadline_s=spec.deadline_s, seed=spec.seed, agent=None, attempts=0,
            loaded_model=False, submitted_unix_s=submitted_unix_s, finished_unix_s=0.0, outcome="",
        )  # fmt: skip
        self._inflight_total += 1
        taken = False
        try:
            self._validate(spec)
            if self._inflight_total > self.limits.max_inflight_requests:
                raise RouteError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{self.limits.max_inflight_requests} requests in flight (limits.max_inflight_requests)",
                )
            if self.policy is not None:
                self.policy.observe(spec.model)
            taken = True  # from here a failure is the policies' to pay for
            routed = await self._route(spec, t0_s, t0_s + deadline_s)
            if self.policy is not None:
                routed = await self.policy.score(spec, routed)
        except RouteError as exc:
            self._finish(replace(record, outcome=exc.code.name.lower(), error=str(exc)), t0_s)
            if taken and self.policy is not None:
                self.policy.fail(spec, exc.code.name, time.monotonic() - t0_s)
            raise
        except asyncio.CancelledError:
            self._finish(replace(record, outcome="cancelled", error="the caller cancelled the request"), t0_s)
            raise
        except Exception as exc:  # a bug: still recorded, and answered INTERNAL
            log.exception("request %s failed unexpectedly", spec.request_id)
            error = RouteError(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
            self._finish(replace(record, outcome="internal", error=str(error)), t0_s)
            raise error from exc
        finally:
            self._inflight_total -= 1
        self._finish(
            replace(
                record, agent=routed.agent, attempts=routed.attempts, loaded_model=routed.loaded_model, outcome="ok",
                latency_s=routed.latency_s, agent_time_s=routed.agent_time_s, queue_time_s=routed.queue_time_s,
                compute_time_s=routed.compute_time_s, energy_j=routed.energy_j, energy_source=routed.energy_source,
                steps=routed.steps, steps_source=routed.steps_source, quality=routed.quality,
            ),
            t0_s,
        )  # fmt: skip
        self.metrics.request_latency.labels(routed.agent, routed.model).observe(routed.latency_s)
        if routed.energy_j is not None:
            self.metrics.energy.labels(routed.agent, routed.energy_source).inc(max(0.0, routed.energy_j))
        return routed

    def _validate(self, spec: SubmitSpec) -> None:
        problems = (
            ("request_id", len(spec.request_id) > _MAX_ID_CHARS, f"longer than {_MAX_ID_CHARS} characters"),
            ("model", not spec.model, "is empty"),
            ("label", spec.label < 0, f"{spec.label} is negative"),
            ("steps", spec.steps is not None and spec.steps < 1, f"{spec.steps} is below 1"),
            ("quality_floor", spec.quality_floor is not None and not 0 < spec.quality_floor <= 1, "is outside (0, 1]"),
            ("snr_db", spec.snr_db is not None and not SNR_MIN_DB <= spec.snr_db <= SNR_MAX_DB,
             f"{spec.snr_db} is outside [{SNR_MIN_DB:g}, {SNR_MAX_DB:g}] dB"),
            *((name, w is not None and not 0 <= w <= MAX_WEIGHT, f"{w} is outside [0, {MAX_WEIGHT:g}]")
              for name, w in (("w_latency", spec.w_latency), ("w_energy", spec.w_energy))),
            ("deadline_s", not 0 < spec.deadline_s <= self.limits.max_deadline_s, f"{spec.deadline_s:g} is outside "
             f"(0, {self.limits.max_deadline_s:g}] (limits.max_deadline_s)"),
        )  # fmt: skip
        for name, bad, why in problems:
            if bad:
                raise RouteError(grpc.StatusCode.INVALID_ARGUMENT, f"{name}: {why}")

    async def _route(self, spec: SubmitSpec, t0_s: float, deadline_s: float) -> Routed:
        tried: list[str] = []
        last = ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:  # the policy is told the time left of the request's limit (a retry has less)
                left = replace(spec, deadline_s=max(deadline_s - time.monotonic(), MIN_LEFT_S))
                choice = self._choose(left, frozenset(tried))
            except RouteError as exc:
                if not tried:
                    raise
                raise RouteError(grpc.StatusCode.UNAVAILABLE, f"{last}; no other agent to retry on: {exc}") from exc
            entry = choice.entry
            tried.append(entry.name)
            self.inflight[entry.name] += 1
            try:
                return await self._run_on(spec, choice, attempt, t0_s, deadline_s)
            except grpc.aio.AioRpcError as exc:
                code, last = exc.code(), f"agent {entry.name}: {exc.code().name}: {exc.details()}"
                if code not in RETRYABLE:
                    raise RouteError(code, last) from exc
                log.warning("request %s failed on %s, attempt %d: %s", spec.request_id, entry.name, attempt, last)
                if code == grpc.StatusCode.UNAVAILABLE:
                    self.registry.unreachable(entry.name, f"request {spec.request_id}: {exc.details()}")
                elif code == grpc.StatusCode.FAILED_PRECONDITION:
                    entry.loaded_models.discard(spec.model)
                if attempt < MAX_ATTEMPTS:
                    self.metrics.retries.inc()
            finally:
                self.inflight[entry.name] -= 1
        raise RouteError(grpc.StatusCode.UNAVAILABLE, f"tried {', '.join(tried)}; last: {last}")

    def _choose(self, spec: SubmitSpec, exclude: frozenset[str]) -> Choice:
        """The policy's allocation when one is configured, else ``choose``."""
        if self.policy is None:
            return self.choose(spec.model, exclude)
        try:
            allocation = self.policy.allocate(spec, exclude)
        except NoAgent as exc:
            raise RouteError(grpc.StatusCode.UNAVAILABLE, str(exc)) from exc
        if allocation is None:
            return self.choose(spec.model, exclude)
        entry = self.registry.get(allocation.agent)
        if entry is None or entry.state != UP:
            why = f"the policy chose agent '{allocation.agent}', which is not up"
            raise RouteError(grpc.StatusCode.UNAVAILABLE, why)
        return Choice(entry, load=spec.model not in entry.loaded_models, steps=allocation.steps)

    async def _run_on(self, spec: SubmitSpec, choice: Choice, attempt: int, t0_s: float, deadline_s: float) -> Routed:
        entry, link = choice.entry, self.link(choice.entry)
        loaded = False
        if choice.load:
            loaded = await self._ensure_loaded(entry, link, spec.model, deadline_s)
        remaining_s = deadline_s - time.monotonic()
        if remaining_s <= 0:
            why = f"deadline_s: {spec.deadline_s:g} s passed before the request started"
            raise RouteError(grpc.StatusCode.DEADLINE_EXCEEDED, why)
        steps = spec.steps if spec.steps is not None else choice.steps
        generated = await link.generate(spec.model, spec.label, steps, spec.seed, spec.request_id, remaining_s)
        source = "request" if spec.steps is not None else "policy" if choice.steps is not None else "model-default"
        return Routed(
            request_id=spec.request_id, model=spec.model, agent=entry.name, image=generated.images[0],
            steps=generated.steps, steps_source=source,
            latency_s=time.monotonic() - t0_s, agent_time_s=generated.total_time_s,
            queue_time_s=generated.queue_time_s, compute_time_s=generated.compute_time_s,
            energy_j=generated.energy_j, energy_source=generated.energy_source, attempts=attempt, loaded_model=loaded,
        )  # fmt: skip

    async def _ensure_loaded(self, entry: AgentEntry, link: AgentLink, model: str, deadline_s: float) -> bool:
        """Load ``model`` on the agent unless it is there; True when this call loaded it."""
        lock = self._load_locks.setdefault((entry.name, model), asyncio.Lock())
        async with lock:
            if model in entry.loaded_models:
                return False
            timeout_s = min(deadline_s - time.monotonic(), self.limits.load_timeout_s)
            if timeout_s <= 0:
                raise RouteError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline_s: passed before the model was loaded")
            loaded = await link.load(model, timeout_s)
            entry.loaded_models.add(model)
            if loaded.already_loaded:
                return False
            self.loads += 1
            self.metrics.model_loads.labels(entry.name, model).inc()
            log.info("loaded %s on %s in %.2f s to serve a request", model, entry.name, loaded.load_time_s)
            return True

    def _finish(self, record: RequestRecord, t0_s: float) -> None:
        record = replace(record, finished_unix_s=time.time())
        if record.latency_s is None:
            record = replace(record, latency_s=time.monotonic() - t0_s)
        self.store.add_request(record)
        self.outcomes[record.outcome] += 1
        self.metrics.requests.labels(record.outcome).inc()
