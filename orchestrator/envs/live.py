"""The live backend of the T2DRL envs: episodes served by a real local cluster, one request at a time.

``LiveBackend`` starts the scenario's cluster on loopback: ``edge-1..edge-N`` and the ``cloud`` agent
as child processes (real ONNX Runtime denoising on this machine's CPU, or the ``simulated`` device),
and the orchestrator daemon in this process, its allocation policy ``external``
(:class:`~orchestrator.policies.external.ExternalAllocation`) and its caching left to the env.
``LiveEpisode`` has the interface of :class:`~orchestrator.sim.cluster.SimEpisode`, so
``CachingEnv``, ``AllocationEnv`` and the T2DRL trainer run on it unchanged:

- time is real: a request is submitted at its arrival time from the episode's start (late, when
  the previous one took longer: the lag is recorded), a frame boundary is waited for;
- a frame's plan is applied with real LoadModel/UnloadModel calls by the daemon's policy loop;
- a request's decision is handed to the daemon, then the request is submitted over gRPC and its
  result is what the client measured (latency, quality scored by the daemon, energy when the agent
  has a source, the emulated downlink when the scenario has a radio), as in ``edgetb demo``;
- views are the daemon's own (agents, queue depths, measured means, the band left in its slot);
  demand counts are the episode's own (the requests it submitted), as the simulator keeps them.

Requests are served one after the other (the env waits for each reward before the next decision),
so queueing between concurrent requests is not part of a live episode; the live demo replays
concurrently. The cluster outlives episodes: loaded models and measured means carry over.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from pathlib import Path

from orchestrator.cluster import CLOUD, SHIPPED_MODELS, LocalCluster
from orchestrator.config import OrchestratorConfig, PolicyConfig
from orchestrator.daemon import RunningDaemon, running_daemon
from orchestrator.daemon_client import OrchestratorClient
from orchestrator.envs.features import Layout
from orchestrator.live_demo import RequestResult, submit_one, with_slot_s
from orchestrator.policies.base import Allocation, ClusterView, RequestInfo
from orchestrator.policies.external import ExternalAllocation
from orchestrator.policy_loop import PolicyLoop
from orchestrator.sim.cluster import EpisodeRecord
from orchestrator.workload import Workload, WorkloadRequest
from profiles.scenario import Scenario, load_scenario

#: Extra time the client waits for an answer beyond the request's deadline, s.
CLIENT_GRACE_S = 5.0


class _InProcessDaemon:
    """The daemon of a ``LiveCluster`` as ``LocalCluster`` sees its children (address, output, stop)."""

    def __init__(self, stack: contextlib.ExitStack, running: RunningDaemon) -> None:
        self.name = "orchestrator"
        self.address = running.daemon.address
        self.output: deque[str] = deque()
        self._stack = stack

    def stop(self, timeout_s: float = 20.0) -> int:
        self._stack.close()
        return 0


class LiveCluster(LocalCluster):
    """A ``LocalCluster`` whose daemon runs in this process (on its own event-loop thread), agents as children."""

    running: RunningDaemon | None = None

    @property
    def processes(self) -> dict:
        return dict(self.agent_processes)  # the daemon is no child process

    def stop(self) -> dict[str, int]:
        """Stop the in-process daemon first (its telemetry readers would warn about every agent going away),
        then the agents."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.daemon is not None:
            self.exit_codes["orchestrator"] = self.daemon.stop(self.stop_timeout_s)
            self.daemon = None
        return super().stop()

    def _start_daemon(self, deadline_s: float) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config = OrchestratorConfig.build(
            listen=self.listen, metrics_listen="", heartbeat_s=self.heartbeat_s, run_dir=self.run_dir,
            policy=self.policy,
        )  # fmt: skip
        stack = contextlib.ExitStack()
        self.running = stack.enter_context(running_daemon(config))
        self.daemon = _InProcessDaemon(stack, self.running)  # type: ignore[assignment]
        self._client = OrchestratorClient(self.daemon.address, timeout_s=10.0)


@dataclass
class LiveBackend:
    """A scenario on a live local cluster: the source of the envs' live episodes. Close it (or use ``with``).

    Attributes:
        scenario: the scenario (workload, utility, timing, cluster hints, radio).
        policy: the daemon's ``[policy]`` table (from the scenario; allocation ``external``).
        cluster: the running cluster.
        episode_slots: slots per episode.
        device: the agents' device (``cpu``, ``auto`` or ``simulated``).
        mem: model -> memory, bytes, for the caching mask (empty: every plan fits).
    """

    scenario: Scenario
    policy: PolicyConfig
    cluster: LiveCluster
    episode_slots: int
    device: str
    mem: dict[str, int] = field(default_factory=dict)
    client: OrchestratorClient | None = None

    def __post_init__(self) -> None:
        if self.client is None:
            timeout_s = self.scenario.requests.deadline_s + CLIENT_GRACE_S
            self.client = OrchestratorClient(self.cluster.daemon_address, timeout_s=timeout_s)

    @classmethod
    def start(
        cls,
        scenario: str | Path = "t2drl",
        *,
        device: str = "cpu",
        sim_profile: Path | None = None,
        episode_slots: int | None = None,
        slot_s: float | None = None,
        run_dir: Path = Path("runs/live-env"),
        models: Path = SHIPPED_MODELS,
        heartbeat_s: float = 1.0,
        mem: dict[str, int] | None = None,
    ) -> LiveBackend:
        """Start the scenario's cluster (``[cluster]`` hints) and return the backend on it.

        Args:
            scenario: shipped scenario name or TOML file.
            device: the agents' device.
            sim_profile: device profile TOML of the ``simulated`` device.
            episode_slots: slots per episode (default: the scenario's ``timing.slots``).
            slot_s: another slot length, s (tests and quick runs shorten real time with it).
            run_dir: the daemon's run folder (its store holds every request, decision and reward).
            models: the agents' model repository.
            heartbeat_s: the agents' heartbeat interval, s.
            mem: model -> memory, bytes, for the caching mask.
        """
        name = str(scenario)
        sc = with_slot_s(load_scenario(name), slot_s)
        scenario_ref = str(Path(name).resolve()) if name.endswith(".toml") else name
        table = {
            "caching": "none", "allocation": "external", "scenario": scenario_ref, "slot_s": sc.timing.slot_s,
            "cloud_agent": CLOUD,
        }  # fmt: skip
        policy = PolicyConfig(**table)
        slots = episode_slots if episode_slots is not None else sc.timing.slots
        if slots < sc.timing.frame_slots:
            raise ValueError(f"episode_slots: {slots} is shorter than one frame ({sc.timing.frame_slots} slots)")
        cluster = LiveCluster(
            sc.cluster.edge_agents, models=models, device=device, sim_profile=sim_profile,
            cloud_delay_ms=sc.cluster.cloud_delay_ms, run_dir=run_dir, heartbeat_s=heartbeat_s, policy=table,
        )  # fmt: skip
        cluster.start()
        return cls(sc, policy, cluster, slots, device, dict(mem or {}))

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.cluster.stop()

    def __enter__(self) -> LiveBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> RunningDaemon:
        if self.cluster.running is None:
            raise RuntimeError("the live cluster is not running")
        return self.cluster.running

    @property
    def loop(self) -> PolicyLoop:
        loop = self.running.daemon.policy_loop
        assert loop is not None  # the daemon was configured with a [policy] table
        return loop

    @property
    def external(self) -> ExternalAllocation:
        allocation = self.loop.allocation
        assert isinstance(allocation, ExternalAllocation)
        return allocation

    def layout(self, min_steps: int = 1, max_steps: int = 32) -> Layout:
        """The feature layout of this cluster (as the simulator's of the same scenario)."""
        sc = self.scenario
        edges = tuple(f"edge-{i}" for i in range(1, sc.cluster.edge_agents + 1))
        return Layout(
            tuple(sc.models.names), edges, CLOUD, self.policy.cache_models, min_steps, max_steps,
            period=max(sc.models.popularity.drift_frames, 1), radio=sc.radio is not None,
        )  # fmt: skip

    def mem_bytes(self) -> dict[str, int]:
        return dict(self.mem)

    def view(self) -> ClusterView:
        """The daemon's view now (taken on its event loop)."""
        loop = self.loop

        async def snapshot() -> ClusterView:
            return loop.view()

        return self.running.call(snapshot())

    def apply_plan(self, plan: dict[str, frozenset[str]]) -> None:
        """Apply a cache plan with real load/unload calls (recorded as decisions of ``live-env``)."""
        self.running.call(self.loop.apply_plan(dict(plan), "live-env"), timeout_s=self.policy.slot_s * 600 + 300)

    def episode(self, seed: int, slots: int | None = None) -> LiveEpisode:
        """A fresh episode: the workload of ``seed`` over ``slots`` (default ``episode_slots``) slots, from now."""
        requests = Workload.from_scenario(self.scenario, seed).requests(slots or self.episode_slots)
        return LiveEpisode(self, requests, seed)


class LiveEpisode(EpisodeRecord):
    """One workload replayed on the live cluster, a decision at a time (``SimEpisode``'s interface).

    Args:
        backend: the running cluster.
        requests: the workload, in arrival order.
        seed: the workload's seed (part of the request ids).
    """

    def __init__(self, backend: LiveBackend, requests: list[WorkloadRequest], seed: int) -> None:
        self.backend = backend
        self.requests = requests
        self.seed = seed
        self.policy = backend.policy
        self.frame_s = self.policy.slot_s * self.policy.frame_slots
        self.frame = 0
        self.index = 0
        self.results: list[RequestResult] = []
        self.requests_frame: Counter[str] = Counter()
        self.requests_total: Counter[str] = Counter()
        self.last_request_s: dict[str, float] = {}
        self._counted = -1
        self.t0_s = time.monotonic()  # workload time 0

    @property
    def boundary_s(self) -> float:
        """Workload time of the next frame boundary, s (the first falls at the workload's start)."""
        return self.frame * self.frame_s

    def _wait_until(self, workload_s: float) -> None:
        time.sleep(max(0.0, self.t0_s + workload_s - time.monotonic()))

    def _view(self) -> ClusterView:
        """The daemon's view with the episode's own demand and frame."""
        return replace(
            self.backend.view(), frame=self.frame, requests_frame=dict(self.requests_frame),
            requests_total=dict(self.requests_total), last_request_s=dict(self.last_request_s),
        )  # fmt: skip

    def frame_view(self) -> ClusterView:
        """The view at the next frame boundary (waited for; demand of the frame that ends there)."""
        self._wait_until(self.boundary_s)
        return self._view()

    def end_frame(self, plan: dict[str, frozenset[str]] | None) -> None:
        """Apply ``plan`` now (None: keep the caches) and start the next frame."""
        if plan is not None:
            self.backend.apply_plan(plan)
        self.requests_frame.clear()
        self.frame += 1

    def request_view(self) -> tuple[WorkloadRequest, ClusterView, RequestInfo]:
        """The next request (waited for until its arrival), the view then and what a policy knows of it."""
        req = self.requests[self.index]
        self._wait_until(req.arrival_s)
        if self._counted != self.index:
            self.requests_frame[req.model] += 1
            self.requests_total[req.model] += 1
            self.last_request_s[req.model] = time.monotonic()
            self._counted = self.index
        info = RequestInfo(
            self._id(req), req.model, req.label, quality_floor=req.quality_floor, snr_db=req.snr_db,
            w_latency=req.w_latency, w_energy=req.w_energy, deadline_s=req.deadline_s,
        )  # fmt: skip
        return req, self._view(), info

    def _id(self, req: WorkloadRequest) -> str:
        return f"live-{self.seed}-{req.id}"

    def serve(self, agent: str, steps: int | None, band_fraction: float | None = None) -> RequestResult:
        """Submit the next request with this decision and wait for its answer (None steps: the policy's fixed)."""
        req = self.requests[self.index]
        steps = steps if steps is not None else self.policy.fixed_steps
        self.backend.external.decide(self._id(req), Allocation(agent, steps, "live env", band_fraction))
        lag_s = max(0.0, time.monotonic() - self.t0_s - req.arrival_s)
        assert self.backend.client is not None
        result, _ = submit_one(self.backend.client, req, lag_s, self._id(req))
        return self._record(result)
