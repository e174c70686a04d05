"""The policy loop: caching once per frame, allocation per request, a reward per served request.

A slot clock (``[policy] slot_s``) runs on the daemon's event loop; at every frame boundary
(``frame_slots`` slots) the caching policy plans the models of each up edge agent and the loop
applies the difference with real UnloadModel/LoadModel calls (unloads first, at most
``max_cache_ops`` calls in flight; each call's measured time and outcome is one ``decisions`` row;
a failure is logged and recorded, never fatal). The router asks ``allocate`` where each request
runs and with how many steps (one ``decisions`` row each). After a request is served, ``score``
rates the image with the quality evaluator (softmax probability of the requested class), computes
the utility (``orchestrator.utility``; unavailable energy leaves its term out and is flagged),
writes one ``rewards`` row and folds latency, energy and quality into the measured means. A request
that fails after the router took it (no agent, a deadline missed) gets ``fail``: a ``rewards`` row scored
as the simulator scores a failure, zero quality after the time it took.

With ``[policy.radio]`` the loop also emulates the radio downlink (:mod:`orchestrator.radio`): each
allocation takes its fraction of the slot's free band (``Allocation.bandwidth_share``, else the
``bandwidth_share`` default), and ``score`` waits out the image's modeled transmission at the SNR the
request reported before the answer goes out (a transmission past the deadline waits until the deadline
and fails DEADLINE_EXCEEDED, as it would on air). The measured means keep the latency without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from orchestrator.agent_link import AgentLink
from orchestrator.config import Limits, PolicyConfig
from orchestrator.metrics import Metrics
from orchestrator.policies import build_policies
from orchestrator.policies.base import (
    AgentState,
    Allocation,
    AllocationPolicy,
    CachingPolicy,
    ClusterView,
    MeasuredTable,
    RequestInfo,
)
from orchestrator.radio import Downlink, SlotBand
from orchestrator.registry import UP, AgentEntry, Registry
from orchestrator.router import Routed, RouteError, SubmitSpec
from orchestrator.run_folder import scenario_differences, scenario_warning
from orchestrator.store import Store
from orchestrator.utility import class_probabilities, per_image_quality, request_utility

log = logging.getLogger(__name__)

#: Distinct model names whose demand is tracked; requests for further names are not counted.
MAX_MODELS = 10_000
#: Band shares kept for requests being served (older ones are dropped: their images get no band).
MAX_PENDING_SHARES = 10_000
#: The shipped quality evaluator (8x8 digits).
DEFAULT_EVALUATOR = Path(__file__).resolve().parent.parent / "profiles" / "evaluator" / "digits"


class PolicyLoop:
    """Runs the configured caching and allocation policies against the live cluster.

    Args:
        config: the ``[policy]`` settings.
        registry: the agents.
        link: the connection to an agent.
        store: receives ``decisions`` and ``rewards`` rows.
        metrics: decisions counter, decision times, missed slots, utility histogram, cache-operation times.
        limits: ``load_timeout_s`` and ``rpc_timeout_s`` bound the cache calls.
        inflight: requests the daemon has in flight per agent (the router's counter).
    """

    def __init__(
        self,
        config: PolicyConfig,
        registry: Registry,
        link: Callable[[AgentEntry], AgentLink],
        store: Store,
        metrics: Metrics,
        limits: Limits,
        inflight: Counter[str] | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.link = link
        self.store = store
        self.metrics = metrics
        self.limits = limits
        self.inflight: Counter[str] = inflight if inflight is not None else Counter()
        self.caching: CachingPolicy | None
        self.allocation: AllocationPolicy | None
        self.caching, self.allocation = build_policies(
            config.caching, config.allocation, seed=config.seed, fixed_steps=config.fixed_steps,
            step_candidates=config.step_candidates, checkpoint=config.checkpoint, fine_tune=config.fine_tune,
        )  # fmt: skip
        if config.checkpoint and config.scenario:
            _warn_if_trained_elsewhere(config)
        self._frame_utility = [0.0, 0]  # sum and count of the caching rewards of the running frame (fine-tuning)
        self.measured = MeasuredTable(config.ewma_alpha)
        self.requests_frame: Counter[str] = Counter()
        self.requests_total: Counter[str] = Counter()
        self.last_request_s: dict[str, float] = {}
        self.untracked = 0  # requests for models beyond MAX_MODELS distinct names
        self.slot = 0
        self.frame = 0
        self.frames_planned = 0
        self.evaluator: Any = None  # profiles.quality.Evaluator once loaded
        self.evaluator_error = "the evaluator is not loaded yet"
        self._t0_s = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self.downlink: Downlink | None = None
        self.band: SlotBand | None = None
        if config.radio is not None:
            r = config.radio
            self.downlink, self.band = Downlink(r.bandwidth_hz, r.image_bytes, r.min_share), SlotBand(r.min_share)
        self._shares: OrderedDict[str, float] = OrderedDict()  # request id -> its band share, until scored

    # --- lifecycle ------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The active policies, as GetStatus lists them (``caching:NAME``, ``allocation:NAME``)."""
        return [
            f"caching:{self.caching.name if self.caching else 'none'}",
            f"allocation:{self.allocation.name if self.allocation else 'router'}",
        ]

    async def start(self) -> None:
        """Load the evaluator (a failure is logged: rewards then carry no utility) and start the clock."""
        path = Path(self.config.evaluator) if self.config.evaluator else DEFAULT_EVALUATOR
        try:
            from profiles.quality import Evaluator

            self.evaluator = await asyncio.get_running_loop().run_in_executor(None, Evaluator.from_dir, path, 1)
            self.evaluator_error = ""
        except Exception as exc:
            self.evaluator_error = f"evaluator {path}: {type(exc).__name__}: {exc}"
            log.error("policy loop: no quality scores: %s", self.evaluator_error)
        self._t0_s = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._clock(), name="policy-clock")
        log.info("policy loop: %s; slot %.3g s, frame %d slots", ", ".join(self.names()), self.config.slot_s,
                 self.config.frame_slots)  # fmt: skip

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.config.fine_tune:
            from orchestrator.policies.drl import save_tuned

            folder = self.store.path.with_name(f"{self.store.path.stem}-tuned")
            try:
                if save_tuned(folder, self.config.checkpoint, self.caching, self.allocation) is not None:  # type: ignore[arg-type]
                    log.info("policy loop: fine-tuned policies written to %s", folder)
            except Exception:  # a failed save must not stop the shutdown
                log.exception("policy loop: writing the fine-tuned policies to %s failed", folder)

    # --- the view -------------------------------------------------------------------------------

    def view(self) -> ClusterView:
        """A snapshot of the registry, the demand and the measured means."""
        agents = tuple(
            AgentState(
                name=e.name, up=e.state == UP, is_cloud=e.name == self.config.cloud_agent,
                loaded=frozenset(e.loaded_models), repository=frozenset(e.capabilities.models),
                mem_free_bytes=e.free_mem_bytes(), mem_total_bytes=e.mem_total_bytes or e.capabilities.mem_total_bytes
                or None, queue_depth=e.queue_depth, inflight=self.inflight[e.name], power_w=e.power_w,
            )
            for e in sorted(self.registry.entries.values(), key=lambda e: e.name)
        )  # fmt: skip
        return ClusterView(
            now_s=time.monotonic(), slot=self.slot, frame=self.frame, agents=agents,
            requests_frame=dict(self.requests_frame), requests_total=dict(self.requests_total),
            last_request_s=dict(self.last_request_s), measured=self.measured.snapshot(),
            model_rank=self.config.model_rank, cache_models=self.config.cache_models,
            band_free=None if self.band is None else self.band.free(self.slot), slot_elapsed=self._slot_elapsed(),
            downlink=self.downlink,
        )  # fmt: skip

    def _slot_elapsed(self) -> float:
        """Fraction of the current slot past, [0, 1)."""
        past = (time.monotonic() - self._t0_s) / self.config.slot_s - self.slot
        return min(max(past, 0.0), 0.999)

    # --- per request ----------------------------------------------------------------------------

    def observe(self, model: str) -> None:
        """Count a submitted request for ``model`` (popularity and recency)."""
        if model not in self.requests_total and len(self.requests_total) >= MAX_MODELS:
            self.untracked += 1
            return
        self.requests_frame[model] += 1
        self.requests_total[model] += 1
        self.last_request_s[model] = time.monotonic()

    def allocate(self, spec: SubmitSpec, exclude: frozenset[str]) -> Allocation | None:
        """The allocation policy's answer (agents in ``exclude`` count as down); None: no policy.

        Raises:
            NoAgent: no agent can serve the request.
            RouteError: INVALID_ARGUMENT, a radio downlink is emulated and the request has no ``snr_db``.
        """
        if self.band is not None and spec.snr_db is None:
            why = "snr_db: required, the daemon emulates a radio downlink ([policy.radio])"
            raise RouteError(grpc.StatusCode.INVALID_ARGUMENT, why)
        if self.allocation is None:
            self._grant(spec.request_id, None)
            return None
        t0_s = time.perf_counter()
        try:
            view = self.view()
            if exclude:
                view = replace(view, agents=tuple(replace(a, up=a.up and a.name not in exclude) for a in view.agents))
            w_latency, w_energy = self.weights(spec)
            request = RequestInfo(
                spec.request_id, spec.model, spec.label, spec.steps, spec.quality_floor, snr_db=spec.snr_db,
                w_latency=w_latency, w_energy=w_energy, deadline_s=spec.deadline_s or None,
            )  # fmt: skip
            allocation = self.allocation.allocate(view, request)
        finally:
            self.metrics.decision_seconds.labels("allocation").observe(time.perf_counter() - t0_s)
        action = {"model": spec.model, "steps": allocation.steps, "reason": allocation.reason, "slot": view.slot}
        share = self._grant(spec.request_id, allocation.bandwidth_share)
        if share is not None:
            action["bandwidth_share"] = share
        self._decision(self.allocation.name, "allocation", allocation.agent, spec.request_id, action)
        return allocation

    def weights(self, spec: SubmitSpec) -> tuple[float, float]:
        """The request's user's utility weights (per s of latency, per J): its own, else the ``[policy]`` ones."""
        return (
            spec.w_latency if spec.w_latency is not None else self.config.w_latency,
            spec.w_energy if spec.w_energy is not None else self.config.w_energy,
        )

    def _grant(self, request_id: str, fraction: float | None) -> float | None:
        """Take the request's band share in this slot (None: no radio); a retry's new grant replaces the old."""
        if self.band is None:
            return None
        share = self.band.grant(self.slot, fraction if fraction is not None else self.config.bandwidth_share)
        self._shares[request_id] = share
        self._shares.move_to_end(request_id)
        while len(self._shares) > MAX_PENDING_SHARES:
            self._shares.popitem(last=False)
        return share

    async def _downlink(self, spec: SubmitSpec, routed: Routed) -> Routed:
        """Wait out the image's emulated transmission; DEADLINE_EXCEEDED (at the deadline) when it cannot fit."""
        if self.downlink is None:
            return routed
        share = self._shares.pop(spec.request_id, 0.0)
        tx_s = self.downlink.tx_time_s(share, spec.snr_db if spec.snr_db is not None else -math.inf)
        left_s = spec.deadline_s - routed.latency_s
        t0_s = time.monotonic()
        if tx_s > left_s:
            await asyncio.sleep(max(0.0, left_s))
            raise RouteError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"deadline_s: the image's downlink needs {tx_s:.3f} s on {share:.3f} of the band at "
                f"{spec.snr_db:.1f} dB; {max(left_s, 0.0):.3f} s were left",
            )
        await asyncio.sleep(tx_s)
        waited_s = time.monotonic() - t0_s
        return replace(routed, latency_s=routed.latency_s + waited_s, downlink_s=waited_s, bandwidth_share=share)

    async def score(self, spec: SubmitSpec, routed: Routed) -> Routed:
        """Send the image over the emulated downlink (with a radio), rate it, write its ``rewards`` row and
        update the means; ``routed`` with its quality (and downlink).

        Raises:
            RouteError: DEADLINE_EXCEEDED, the image's downlink does not fit in the deadline.
        """
        served_latency_s = routed.latency_s  # without the downlink: what the agent side took
        routed = await self._downlink(spec, routed)
        quality, why = await self._quality(routed.image, spec.label)
        detail: dict[str, Any] = {
            "request_id": spec.request_id, "agent": routed.agent, "model": routed.model, "steps": routed.steps,
            "latency_s": routed.latency_s, "energy_j": routed.energy_j, "energy_source": routed.energy_source,
            "quality": quality, "slot": self.slot, "frame": self.frame,
        }  # fmt: skip
        if routed.bandwidth_share is not None:
            detail.update(downlink_s=routed.downlink_s, bandwidth_share=routed.bandwidth_share)
        reward = None
        if quality is None:
            detail["quality_unavailable"] = why
        else:
            try:
                w_latency, w_energy = self.weights(spec)
                u = request_utility(
                    quality, routed.latency_s, routed.energy_j, w_latency, w_energy, spec.quality_floor
                )  # fmt: skip
                reward = u.value
                detail.update(w_latency=w_latency, w_energy=w_energy, latency_term=u.latency_term,
                              energy_term=u.energy_term, energy_available=u.energy_available,
                              floor_met=u.floor_met)  # fmt: skip
            except ValueError as exc:  # e.g. a negative measured energy
                detail["utility_error"] = str(exc)
        policy = self.allocation.name if self.allocation else "router"
        self.store.put("rewards", (time.time(), policy, None, reward, json.dumps(detail)))
        if reward is not None:
            self._rewarded(spec, reward, w_latency, w_energy, policy)
        latency = None if routed.loaded_model else served_latency_s  # a model load is not the steady latency
        self.measured.update(routed.agent, routed.model, routed.steps, latency, routed.energy_j, quality)
        return replace(routed, quality=quality)

    def fail(self, spec: SubmitSpec, outcome: str, latency_s: float) -> None:
        """A request the router took that brought no image back (``outcome``: the gRPC status name): scored as
        the simulator scores a failure, zero quality after ``latency_s`` (a deadline miss: the deadline), in a
        ``rewards`` row with its outcome and as the learners' reward, so a tuned policy pays for its misses."""
        w_latency, w_energy = self.weights(spec)
        u = request_utility(0.0, max(0.0, latency_s), None, w_latency, w_energy, spec.quality_floor)
        policy = self.allocation.name if self.allocation else "router"
        detail = {
            "request_id": spec.request_id, "model": spec.model, "outcome": outcome, "latency_s": latency_s,
            "quality": 0.0, "slot": self.slot, "frame": self.frame, "w_latency": w_latency, "w_energy": w_energy,
            "latency_term": u.latency_term,
        }  # fmt: skip
        self.store.put("rewards", (time.time(), policy, None, u.value, json.dumps(detail)))
        self._rewarded(spec, u.value, w_latency, w_energy, policy)

    def _rewarded(self, spec: SubmitSpec, reward: float, w_latency: float, w_energy: float, policy: str) -> None:
        """Hand one request's reward to the metrics and, while tuning, to the learners."""
        self.metrics.utility.labels(policy).observe(reward)
        baseline = getattr(self.caching, "reward_baseline", None)
        if baseline is not None:  # the caching learner's reward is utility less a per-request baseline
            reward_c = reward - baseline(spec.model, w_latency, w_energy, spec.snr_db, spec.deadline_s)
        else:
            reward_c = reward
        self._frame_utility[0] += reward_c
        self._frame_utility[1] += 1
        learn = getattr(self.allocation, "learn", None)
        if learn is not None and self.config.fine_tune:
            learn(spec.request_id, reward)

    async def _quality(self, image: np.ndarray, label: int) -> tuple[float | None, str]:
        if self.evaluator is None:
            return None, self.evaluator_error
        evaluator = self.evaluator

        def run() -> float:
            logits, _ = evaluator.run(np.asarray(image, np.float32)[None])
            return float(per_image_quality(class_probabilities(logits[0]), int(label)))

        try:
            return await asyncio.get_running_loop().run_in_executor(None, run), ""
        except Exception as exc:  # e.g. an image shape the evaluator does not take
            return None, f"{type(exc).__name__}: {exc}"

    # --- per frame ------------------------------------------------------------------------------

    async def _clock(self) -> None:
        """Advance the slot at a fixed rate (late: at once, skipping slots); plan at frame boundaries."""
        slot_s, frame_slots = self.config.slot_s, self.config.frame_slots
        while True:
            await asyncio.sleep(max(0.0, self._t0_s + (self.slot + 1) * slot_s - time.monotonic()))
            due = int((time.monotonic() - self._t0_s) // slot_s)
            if due > self.slot + 1:  # woke late: the slots in between are skipped
                self.metrics.slots_missed.inc(due - self.slot - 1)
            self.slot = max(self.slot + 1, due)
            frame = self.slot // frame_slots
            if frame == self.frame:
                continue
            try:
                await self.plan_frame()
            except Exception:  # a bug in a policy must not stop the loop
                log.exception("policy loop: frame %d: caching failed", self.frame)
            self.frame = frame
            self.requests_frame.clear()

    async def plan_frame(self) -> None:
        """Ask the caching policy for a plan and apply it to the up edge agents."""
        if self.caching is None:
            return
        total, count = self._frame_utility
        self._frame_utility = [0.0, 0]
        learn = getattr(self.caching, "learn", None)
        if learn is not None and self.config.fine_tune and count:
            learn(total / count)
        t0_s = time.perf_counter()
        try:
            plan = self.caching.plan(self.view())
        finally:
            self.metrics.decision_seconds.labels("frame-plan").observe(time.perf_counter() - t0_s)
        self.frames_planned += 1
        await self.apply_plan(plan, self.caching.name)

    async def apply_plan(self, plan: dict[str, frozenset[str]], policy: str) -> None:
        """Load and unload what ``plan`` changes on the up edge agents (each call a ``decisions`` row of ``policy``).

        The frame clock calls it with its caching policy's plan; the envs' live backend with its own.
        """
        semaphore = asyncio.Semaphore(self.config.max_cache_ops)
        await asyncio.gather(*(self._apply(agent, models, semaphore, policy) for agent, models in sorted(plan.items())))

    async def _apply(self, name: str, models: frozenset[str], semaphore: asyncio.Semaphore, policy: str) -> None:
        entry = self.registry.get(name)
        if entry is None or entry.state != UP or name == self.config.cloud_agent:
            return
        target = sorted(m for m in models if m in entry.capabilities.models)
        if len(target) > self.config.cache_models:
            log.warning("policy loop: plan for %s has %d models > cache_models; keeping %s", name, len(target),
                        target[: self.config.cache_models])  # fmt: skip
            target = target[: self.config.cache_models]
        for model in sorted(entry.loaded_models - set(target)):  # unload first: the memory is needed
            await self._cache_op("unload", entry, model, semaphore, policy)
        for model in target:
            if model not in entry.loaded_models:
                await self._cache_op("load", entry, model, semaphore, policy)

    async def _cache_op(
        self, kind: str, entry: AgentEntry, model: str, semaphore: asyncio.Semaphore, policy: str
    ) -> None:
        """One LoadModel/UnloadModel call: measured, recorded, its failure logged (never raised)."""
        async with semaphore:
            t0_s, error = time.monotonic(), ""
            try:
                link = self.link(entry)
                if kind == "load":
                    await link.load(model, self.limits.load_timeout_s)
                    entry.loaded_models.add(model)
                else:
                    await link.unload(model, self.limits.rpc_timeout_s)
                    entry.loaded_models.discard(model)
            except grpc.aio.AioRpcError as exc:
                error = f"{exc.code().name}: {exc.details()}"
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            time_s = time.monotonic() - t0_s
        if error:
            log.warning("policy loop: %s %s on %s failed after %.2f s: %s", kind, model, entry.name, time_s, error)
        self.metrics.cache_op_seconds.labels(entry.name, kind).observe(time_s)
        action = {"model": model, "ok": not error, "time_s": time_s, "error": error or None, "frame": self.frame}
        self._decision(policy, f"cache-{kind}", entry.name, None, action)

    def _decision(self, policy: str, kind: str, agent: str, request_id: str | None, action: dict[str, Any]) -> None:
        self.store.put("decisions", (time.time(), policy, kind, agent, request_id, json.dumps(action)))
        self.metrics.decisions.labels(policy, kind).inc()


def _warn_if_trained_elsewhere(config: PolicyConfig) -> None:
    """Log a warning where the checkpoint's learners trained on another scenario than ``[policy] scenario`` (with
    this config's slot length and frame): fine-tuning elsewhere is legitimate, running there by mistake is not."""
    from profiles.scenario import load_scenario

    sc = load_scenario(config.scenario)  # it loaded when the config was validated
    sc = sc.model_copy(update={"timing": sc.timing.model_copy(
        update={"slot_s": config.slot_s, "frame_slots": config.frame_slots})})  # fmt: skip
    warning = scenario_warning(config.checkpoint, sc, scenario_differences(config.checkpoint, sc))
    if warning is not None:
        log.warning("%s", warning)
