"""The simulator backend: the live policies, unchanged, against a cluster modeled from measured profiles.

:func:`simulate` replays a workload (the same seeded request list a live run replays) in simulated
time through a :class:`SimCluster`: ``edge-1..edge-N`` that cache models and a ``cloud`` agent that
holds every model behind the same emulated WAN delay the live cloud agent adds (truncated normal).
The caching policy plans at every frame boundary and the allocation policy places every request,
from the same :class:`~orchestrator.policies.base.ClusterView` the live policy loop builds (agents,
demand, measured EWMAs). What the live cluster measures, the simulator draws from the profiles
(:mod:`orchestrator.sim.sampler`, labelled ``modeled``):

* each (agent, model) is one FIFO server, as the agent's one worker thread per model;
* a request's latency = its wait + modeled compute + ``hops`` x the profile's per-request overhead
  (client -> daemon -> agent is two gRPC hops) + the cloud delay when served by the cloud;
* a model load (a frame plan, or a request sent to an agent without the model) takes the
  profile's load time; the model counts as loaded when it is done, as the daemon sees it;
* energy and quality per :mod:`orchestrator.sim.sampler`;
* with a radio downlink (:mod:`orchestrator.radio`), the image's modeled transmission on the band
  share its allocation took in its slot is added to the latency (as the live daemon waits it out).

Not modeled: CPU contention between agents on one host, the daemon's own scoring time, telemetry.
Results are :class:`~orchestrator.live_demo.RequestResult` rows, so the live and simulated runs are
summarised by the same code.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from orchestrator.config import PolicyConfig
from orchestrator.live_demo import OK, RequestResult, failed
from orchestrator.policies import build_policies
from orchestrator.policies.base import (
    AgentState,
    Allocation,
    AllocationPolicy,
    CachingPolicy,
    ClusterView,
    MeasuredTable,
    NoAgent,
    RequestInfo,
)
from orchestrator.radio import Downlink, SlotBand
from orchestrator.sim.sampler import ModelSampler
from orchestrator.utility import request_utility
from orchestrator.workload import WorkloadRequest

CLOUD = "cloud"
#: The live cloud agent's emulated delay is a normal cut at this many standard deviations.
TRUNCATION_SD = 3.0


@dataclass(frozen=True)
class SimSettings:
    """The simulated cluster.

    Attributes:
        edge_agents: edge agents ``edge-1..edge-N``.
        cloud_delay_ms: mean emulated WAN round trip of the cloud agent, ms.
        cloud_jitter_ms: its standard deviation, ms (cut at 3 sd and 0, as the live agent).
        hops: gRPC round trips per request whose overhead the profile measured once (2: client ->
            daemon -> agent).
        policy_clock_s: the policy clock's reading when the workload starts, s: the live daemon's
            uptime when the replay began (frame boundaries fall at multiples of the frame length on
            that clock; those before the workload starts are planned too, with no demand yet).
        mem_total_bytes: memory of an edge agent, bytes (None: unbounded).
        mem_other_used: the fraction of ``mem_total_bytes`` in use by everything but the models (the
            operating system, the agent, other processes), drawn uniformly from this range per episode
            (per seed): the free memory a view reports varies as a live machine's does.
        power_measured: whether the device measures its power (its profile's ``telemetry.power_source``
            is not ``unavailable``); when not, views carry no power and served requests no measured
            energy, as the live daemon sees such a device (the utility still charges the modelled energy).
        idle_power_w: the device's power at rest, W, reported by an idle agent when power is measured
            (None: an idle agent reports none); a busy agent reports its model's power under load.
        seed: seed of every draw (compute, quality, cloud delay).
        downlink: the radio downlink every image crosses; None: no radio.
    """

    edge_agents: int = 2
    cloud_delay_ms: float = 200.0
    cloud_jitter_ms: float = 10.0
    hops: float = 2.0
    policy_clock_s: float = 0.0
    mem_total_bytes: int | None = None
    mem_other_used: tuple[float, float] = (0.0, 0.0)
    power_measured: bool = False
    idle_power_w: float | None = None
    seed: int = 0
    downlink: Downlink | None = None


@dataclass
class SimAgent:
    """One agent's simulated state (times in simulated seconds)."""

    name: str
    is_cloud: bool
    samplers: Mapping[str, ModelSampler]
    loaded: set[str] = field(default_factory=set)
    ready_at_s: dict[str, float] = field(default_factory=dict)  # model -> when its load finishes
    free_at_s: dict[str, float] = field(default_factory=dict)  # model -> when its worker is free
    load_free_at_s: float = 0.0  # loads on one agent run one after the other
    pending: list[float] = field(default_factory=list)  # heap of completion times

    def settle(self, now_s: float) -> None:
        """Finish loads and requests that are done by ``now_s``."""
        for model, t in list(self.ready_at_s.items()):
            if t <= now_s:
                self.loaded.add(model)
                del self.ready_at_s[model]
        while self.pending and self.pending[0] <= now_s:
            heapq.heappop(self.pending)

    def load(self, model: str, now_s: float) -> float:
        """Start loading ``model``; returns when it is loaded."""
        if model in self.loaded:
            return now_s
        if model in self.ready_at_s:
            return self.ready_at_s[model]
        start = max(now_s, self.load_free_at_s)
        self.load_free_at_s = start + self.samplers[model].load_time_s
        self.ready_at_s[model] = self.load_free_at_s
        return self.load_free_at_s

    def unload(self, model: str) -> None:
        self.loaded.discard(model)
        self.ready_at_s.pop(model, None)


class SimCluster:
    """Edge agents and a cloud agent whose service is drawn from model profiles.

    Args:
        samplers: model -> its sampler on the agents' device (every agent runs the same device).
        settings: the cluster.
        policy: the ``[policy]`` table (cache size, steps, EWMA, rank) as the live daemon reads it.
    """

    def __init__(self, samplers: Mapping[str, ModelSampler], settings: SimSettings, policy: PolicyConfig) -> None:
        self.settings = settings
        self.policy = policy
        self.agents = [SimAgent(f"edge-{i}", False, samplers) for i in range(1, settings.edge_agents + 1)]
        self.agents.append(SimAgent(CLOUD, True, samplers, loaded=set(samplers)))
        lo, hi = settings.mem_other_used
        if not 0.0 <= lo <= hi < 1.0:
            raise ValueError(f"mem_other_used: {settings.mem_other_used!r} needs 0 <= low <= high < 1")
        self.rng = np.random.default_rng((settings.seed, 7))
        self._delay_rng = np.random.default_rng(settings.seed)
        # its own stream, so the other draws of a seed are the same with or without it
        self._mem_other_used = float(np.random.default_rng((settings.seed, 11)).uniform(lo, hi)) if hi > 0 else 0.0
        self._busy_power_w = next((s.power_w for s in samplers.values()), None)
        self.measured = MeasuredTable(policy.ewma_alpha)
        self.requests_frame: Counter[str] = Counter()
        self.requests_total: Counter[str] = Counter()
        self.last_request_s: dict[str, float] = {}
        self._done: list[tuple[float, int, str, str, int, float | None, float | None, float]] = []
        self.band = SlotBand(settings.downlink.min_share) if settings.downlink is not None else None

    def agent(self, name: str) -> SimAgent:
        return next(a for a in self.agents if a.name == name)

    def cloud_delay_s(self) -> float:
        """One emulated WAN round trip, s: the live agent's truncated normal (inverse CDF of one uniform)."""
        mean, sd = self.settings.cloud_delay_ms, self.settings.cloud_jitter_ms
        if sd <= 0:
            return mean / 1e3
        lo = max(-TRUNCATION_SD, -mean / sd)
        normal = NormalDist()
        a, b = normal.cdf(lo), normal.cdf(TRUNCATION_SD)
        u = float(self._delay_rng.uniform())
        return (mean + sd * normal.inv_cdf(a + u * (b - a))) / 1e3

    # --- the view -------------------------------------------------------------------------------

    def settle(self, now_s: float) -> None:
        for agent in self.agents:
            agent.settle(now_s)
        while self._done and self._done[0][0] <= now_s:
            _, _, agent, model, steps, latency, energy, quality = heapq.heappop(self._done)
            measured_energy = energy if self.settings.power_measured else None
            self.measured.update(agent, model, steps, latency, measured_energy, quality)

    def view(self, now_s: float, slot: int, frame: int, slot_elapsed: float = 0.0) -> ClusterView:
        agents = tuple(
            AgentState(
                name=a.name, up=True, is_cloud=a.is_cloud, loaded=frozenset(a.loaded),
                repository=frozenset(a.samplers), mem_total_bytes=self.settings.mem_total_bytes,
                mem_free_bytes=self._mem_free_bytes(a), queue_depth=0, inflight=len(a.pending),
                power_w=self._power_w(a),
            )
            for a in self.agents
        )  # fmt: skip
        return ClusterView(
            now_s=now_s, slot=slot, frame=frame, agents=agents, requests_frame=dict(self.requests_frame),
            requests_total=dict(self.requests_total), last_request_s=dict(self.last_request_s),
            measured=self.measured.snapshot(), model_rank=self.policy.model_rank,
            cache_models=self.policy.cache_models, band_free=None if self.band is None else self.band.free(slot),
            slot_elapsed=slot_elapsed, downlink=self.settings.downlink,
        )  # fmt: skip

    def _mem_free_bytes(self, agent: SimAgent) -> int | None:
        """Memory not used by the loaded models nor by the episode's other use; None: unbounded."""
        total = self.settings.mem_total_bytes
        if total is None:
            return None
        models = sum(agent.samplers[m].mem_bytes for m in agent.loaded)
        return max(total - int(total * self._mem_other_used) - models, 0)

    def _power_w(self, agent: SimAgent) -> float | None:
        """What the agent's power telemetry reads: under load while it serves, else at rest."""
        if not self.settings.power_measured:
            return None
        return self._busy_power_w if agent.pending else self.settings.idle_power_w

    # --- decisions ------------------------------------------------------------------------------

    def apply_plan(self, plan: Mapping[str, frozenset[str]], now_s: float) -> None:
        """Unload, then load, what the plan changes on each edge agent (as the live loop does)."""
        for name, models in sorted(plan.items()):
            agent = next((a for a in self.agents if a.name == name and not a.is_cloud), None)
            if agent is None:
                continue
            target = sorted(m for m in models if m in agent.samplers)[: self.policy.cache_models]
            for model in sorted((agent.loaded | set(agent.ready_at_s)) - set(target)):
                agent.unload(model)
            for model in target:
                agent.load(model, now_s)

    def serve(
        self, req: WorkloadRequest, agent_name: str, steps: int, now_s: float, slot: int = 0,
        band_fraction: float | None = None,
    ) -> RequestResult:  # fmt: skip
        """Run ``req`` on ``agent_name`` at ``steps``, its image sent on ``band_fraction`` of the free band of
        ``slot`` (None: the policy's default; no radio: ignored); the modeled result."""
        agent = self.agent(agent_name)
        share, downlink_s = None, 0.0
        if self.band is not None and self.settings.downlink is not None:
            if req.snr_db is None:
                raise ValueError(f"request {req.id}: snr_db: the simulated downlink needs each request's SNR")
            fraction = band_fraction if band_fraction is not None else self.policy.bandwidth_share
            share = self.band.grant(slot, fraction)
            downlink_s = self.settings.downlink.tx_time_s(share, req.snr_db)
        sampler = agent.samplers[req.model]
        loaded_model = False
        ready_s = now_s
        if req.model not in agent.loaded:
            ready_s = agent.load(req.model, now_s)
            loaded_model = True
        draw = sampler.draw(steps, self.rng)
        start_s = max(ready_s, agent.free_at_s.get(req.model, 0.0), now_s)
        end_s = start_s + draw.compute_s
        agent.free_at_s[req.model] = end_s
        delay_s = self.cloud_delay_s() if agent.is_cloud else 0.0
        served_s = end_s - now_s + self.settings.hops * draw.overhead_s + delay_s  # what the agent side took
        latency_s = served_s + downlink_s
        done_s = now_s + served_s
        heapq.heappush(agent.pending, done_s)
        quality = None if np.isnan(draw.quality) else draw.quality
        if latency_s > req.deadline_s:
            return failed(req, "DEADLINE_EXCEEDED", req.deadline_s, bandwidth_share=share)
        heapq.heappush(
            self._done,
            (done_s, req.id, agent.name, req.model, steps, None if loaded_model else served_s, draw.energy_j, quality),
        )
        util = request_utility(
            quality if quality is not None else 0.0, latency_s, draw.energy_j, req.w_latency, req.w_energy,
            req.quality_floor,
        )  # fmt: skip
        hit = not agent.is_cloud and not loaded_model
        return RequestResult(
            req.id, req.user, req.slot, req.model, OK, agent.name, latency_s, 0.0, draw.energy_j, draw.energy_source,
            quality, steps, hit, util.value, downlink_s, share,
        )  # fmt: skip


class EpisodeRecord:
    """What every episode (simulated here, live in ``orchestrator.envs.live``) does with its results.

    Subclasses set ``requests``, ``index`` (the next request without a result) and ``results``, and
    implement ``boundary_s`` and ``serve(agent, steps, band_fraction)``.
    """

    requests: list[WorkloadRequest]
    index: int
    results: list[RequestResult]

    @property
    def done(self) -> bool:
        return self.index >= len(self.requests)

    @property
    def boundary_s(self) -> float:
        """Workload time of the next frame boundary, s."""
        raise NotImplementedError

    def frame_due(self) -> bool:
        """A frame boundary comes before (or at) the next request's arrival."""
        return not self.done and self.boundary_s <= self.requests[self.index].arrival_s

    def serve(self, agent: str, steps: int | None, band_fraction: float | None = None) -> RequestResult:
        raise NotImplementedError

    def allocate(self, choice: Allocation) -> RequestResult:
        """Serve the next request as an allocation policy chose."""
        return self.serve(choice.agent, choice.steps, choice.bandwidth_share)

    def fail(self) -> RequestResult:
        """The next request found no agent (UNAVAILABLE, zero quality and latency; nothing is served)."""
        return self._record(failed(self.requests[self.index], "UNAVAILABLE"))

    def _record(self, result: RequestResult) -> RequestResult:
        self.results.append(result)
        self.index += 1
        return result


class SimEpisode(EpisodeRecord):
    """:func:`simulate` one decision at a time, for the envs that train policies on the simulator.

    The caller alternates: while :meth:`frame_due`, plan the frame from :meth:`frame_view` and pass
    the plan to :meth:`end_frame`; then take the next request's view from :meth:`request_view` and
    answer with :meth:`serve` (or :meth:`fail`). :attr:`done` once every request has a result.

    Args:
        requests: the workload, in arrival order.
        samplers: model -> sampler (every requested model needs one).
        policy: the ``[policy]`` table (frame length, cache size, steps, EWMA).
        settings: the simulated cluster.
    """

    def __init__(
        self,
        requests: Sequence[WorkloadRequest],
        samplers: Mapping[str, ModelSampler],
        policy: PolicyConfig,
        settings: SimSettings = SimSettings(),
    ) -> None:
        missing = sorted({r.model for r in requests} - set(samplers))
        if missing:
            raise ValueError(f"samplers: no profile for {', '.join(missing)}")
        self.requests = list(requests)
        self.policy = policy
        self.settings = settings
        self.cluster = SimCluster(samplers, settings, policy)
        self.frame_s = policy.slot_s * policy.frame_slots
        self.frame = 0  # boundaries before the workload's start are planned too (at negative workload times)
        self.index = 0  # the next request without a result
        self.results: list[RequestResult] = []
        self._counted = -1  # the request whose arrival was counted in the demand

    @property
    def boundary_s(self) -> float:
        """Workload time of the next frame boundary, s (policy clock = workload time + policy_clock_s)."""
        return (self.frame + 1) * self.frame_s - self.settings.policy_clock_s

    def _slot(self, now_s: float) -> int:
        return int((now_s + self.settings.policy_clock_s) // self.policy.slot_s)

    def _slot_elapsed(self, now_s: float) -> float:
        return ((now_s + self.settings.policy_clock_s) % self.policy.slot_s) / self.policy.slot_s

    def frame_view(self) -> ClusterView:
        """The view at the next frame boundary (demand of the frame that ends there)."""
        now_s = self.boundary_s
        self.cluster.settle(now_s)
        return self.cluster.view(now_s, self._slot(now_s), self.frame)

    def end_frame(self, plan: Mapping[str, frozenset[str]] | None) -> None:
        """Apply ``plan`` (None: keep the caches) at the boundary and start the next frame."""
        if plan is not None:
            self.cluster.apply_plan(plan, self.boundary_s)
        self.cluster.requests_frame.clear()
        self.frame += 1

    def request_view(self) -> tuple[WorkloadRequest, ClusterView, RequestInfo]:
        """The next request, the view at its arrival (its demand counted once) and what a policy knows of it."""
        req = self.requests[self.index]
        cluster = self.cluster
        cluster.settle(req.arrival_s)
        if self._counted != self.index:
            cluster.requests_frame[req.model] += 1
            cluster.requests_total[req.model] += 1
            cluster.last_request_s[req.model] = req.arrival_s
            self._counted = self.index
        view = cluster.view(req.arrival_s, self._slot(req.arrival_s), self.frame, self._slot_elapsed(req.arrival_s))
        info = RequestInfo(
            f"sim-{req.id}", req.model, req.label, quality_floor=req.quality_floor, snr_db=req.snr_db,
            w_latency=req.w_latency, w_energy=req.w_energy, deadline_s=req.deadline_s,
        )  # fmt: skip
        return req, view, info

    def serve(self, agent: str, steps: int | None, band_fraction: float | None = None) -> RequestResult:
        """Serve the next request on ``agent`` at ``steps`` (None: the policy's fixed steps), its image on
        ``band_fraction`` of the slot's free downlink band (None: the policy's ``bandwidth_share``)."""
        req = self.requests[self.index]
        steps = steps if steps is not None else self.policy.fixed_steps
        result = self.cluster.serve(req, agent, steps, req.arrival_s, self._slot(req.arrival_s), band_fraction)
        return self._record(result)


def simulate(
    requests: Sequence[WorkloadRequest],
    samplers: Mapping[str, ModelSampler],
    policy: PolicyConfig,
    settings: SimSettings = SimSettings(),
    policies: tuple[CachingPolicy | None, AllocationPolicy | None] | None = None,
) -> list[RequestResult]:
    """Replay ``requests`` through the policies of ``policy`` on a simulated cluster.

    Args:
        requests: the workload, in arrival order.
        samplers: model -> sampler (every requested model needs one).
        policy: the ``[policy]`` table, exactly as a live daemon would get it.
        settings: the simulated cluster.
        policies: (caching, allocation) objects to run instead of the ones ``policy`` names (e.g.
            trained learners wrapped by :mod:`orchestrator.policies.drl`).

    Returns:
        One result per request, in workload order.
    """
    if policies is None:
        policies = build_policies(
            policy.caching, policy.allocation, seed=policy.seed, fixed_steps=policy.fixed_steps,
            step_candidates=policy.step_candidates, checkpoint=policy.checkpoint,
        )  # fmt: skip
    return run_episode(SimEpisode(requests, samplers, policy, settings), *policies)


def run_episode(
    episode: SimEpisode, caching: CachingPolicy | None, allocation: AllocationPolicy | None
) -> list[RequestResult]:
    """Run an episode (a ``SimEpisode``, or anything with its interface: the envs' live episodes) to its end
    with the policies: plan every frame, place every request. One result per request, in workload order."""
    while not episode.done:
        while episode.frame_due():
            episode.end_frame(caching.plan(episode.frame_view()) if caching is not None else None)
        _, view, info = episode.request_view()
        try:
            if allocation is None:
                raise NoAgent("an episode needs an allocation policy (the router is not modeled)")
            choice = allocation.allocate(view, info)
        except NoAgent:
            episode.fail()
            continue
        episode.allocate(choice)
    return episode.results
