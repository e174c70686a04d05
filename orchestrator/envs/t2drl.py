"""The T2DRL envs: ``CachingEnv`` (per frame, discrete) and ``AllocationEnv`` (per request, continuous).

Both follow the Gymnasium API and step a :class:`~orchestrator.sim.cluster.SimEpisode`: a seeded
workload of the scenario replayed on a cluster whose service is drawn from measured model profiles
(the sim backend, ``SimBackend``). Observations and actions are those of
:mod:`orchestrator.envs.features`, built from the same ``ClusterView`` the live daemon gives its
policies, so what is trained here runs live as :mod:`orchestrator.policies.drl` policies.

- ``CachingEnv``: one step is one caching frame. The action picks a joint cache plan (every edge
  agent keeps ``cache_models`` models; ``info["action_mask"]`` masks plans that do not fit an
  agent's memory); the frame's requests are then allocated by an inner allocation policy (the
  timescale below: fixed steps on the best holder by default, a trained actor in T2DRL). Reward:
  the mean utility of the frame's requests (0 for an empty frame).
- ``AllocationEnv``: one step is one request. The action sets its denoising steps and scores the
  servers; it runs on the best-scoring server that holds the model (else the cloud). With a
  ``[radio]`` scenario the action also sets the fraction of the slot's free downlink band its image
  takes (what it takes, later requests of the slot lack: episodes are not one-step). Frames are
  planned by an outer caching policy (random by default, so the actor sees every cache state; the
  trained DDQN in T2DRL). Reward: the request's utility.

An episode is ``episode_slots`` slots of a fresh workload: ``reset(seed=...)`` seeds the draw of
the workload (users, arrivals, models, labels) and of the cluster (compute, quality, WAN delay).
The live backend (:class:`orchestrator.envs.live.LiveBackend`) gives the same envs episodes served
by a real local cluster in real time, one request at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from orchestrator.config import PolicyConfig
from orchestrator.envs.features import (
    Layout,
    allocation_observation,
    cache_configs,
    caching_mask,
    caching_observation,
    decode_allocation,
)
from orchestrator.policies.base import AllocationPolicy, CachingPolicy, NoAgent
from orchestrator.policies.fixed_steps import FixedSteps
from orchestrator.policies.random_cache import RandomCaching
from orchestrator.policies.sqrt_band import band_prior
from orchestrator.radio import downlink_of
from orchestrator.sim.cluster import CLOUD, SimEpisode, SimSettings
from orchestrator.sim.sampler import ModelSampler
from orchestrator.workload import Workload
from profiles.profile import MODELS_DIR
from profiles.scenario import Scenario, load_scenario

if TYPE_CHECKING:
    from orchestrator.envs.live import LiveEpisode

#: Workload seeds of the envs' episodes are drawn below this bound (held-out evaluation seeds lie above).
TRAIN_SEED_BOUND = 1_000_000


@dataclass(frozen=True)
class SimBackend:
    """A scenario on a simulated cluster: the source of the envs' episodes.

    Attributes:
        scenario: the scenario (workload, utility, timing, cluster hints).
        samplers: model -> sampler from its profile on the agents' device.
        policy: the ``[policy]`` table (frame length, cache size, fixed steps), from the scenario.
        settings: the simulated cluster (its seed is replaced per episode).
        episode_slots: slots per episode.
        device: the device profile the samplers come from.
    """

    scenario: Scenario
    samplers: Mapping[str, ModelSampler]
    policy: PolicyConfig
    settings: SimSettings
    episode_slots: int
    device: str

    @classmethod
    def from_scenario(
        cls,
        scenario: str | Path | Scenario = "t2drl",
        device: str = "x86-cpu",
        episode_slots: int | None = None,
        models_dir: Path = MODELS_DIR,
    ) -> SimBackend:
        """The backend of a scenario (name, TOML file or loaded) with the model profiles of ``device``."""
        from orchestrator.fidelity import device_settings, samplers_for

        sc = scenario if isinstance(scenario, Scenario) else load_scenario(str(scenario))
        samplers = samplers_for(sc.models.names, device, models_dir)
        policy = PolicyConfig(
            caching="none", allocation="fixed-steps", slot_s=sc.timing.slot_s, frame_slots=sc.timing.frame_slots,
            cache_models=sc.cluster.cache_models, w_latency=sc.utility.w_latency, w_energy=sc.utility.w_energy,
            model_rank=tuple(sc.models.order), cloud_agent=CLOUD,
            bandwidth_share=sc.radio.fixed_share if sc.radio is not None else 0.5,
        )  # fmt: skip
        frame_s = sc.timing.slot_s * sc.timing.frame_slots
        # the policy clock runs one frame ahead: the first plan falls at the workload's start
        settings = SimSettings(
            edge_agents=sc.cluster.edge_agents, cloud_delay_ms=sc.cluster.cloud_delay_ms, policy_clock_s=frame_s,
            downlink=downlink_of(sc), **device_settings(device),
        )  # fmt: skip
        slots = episode_slots if episode_slots is not None else sc.timing.slots
        if slots < sc.timing.frame_slots:
            raise ValueError(f"episode_slots: {slots} is shorter than one frame ({sc.timing.frame_slots} slots)")
        return cls(sc, samplers, policy, settings, slots, device)

    def layout(self, min_steps: int = 1, max_steps: int = 32) -> Layout:
        """The feature layout of this cluster."""
        edges = tuple(f"edge-{i}" for i in range(1, self.settings.edge_agents + 1))
        drift = self.scenario.models.popularity.drift_frames
        return Layout(
            tuple(self.scenario.models.names), edges, CLOUD, self.policy.cache_models, min_steps, max_steps,
            period=max(drift, 1), radio=self.settings.downlink is not None,
        )  # fmt: skip

    def mem_bytes(self) -> dict[str, int]:
        return {m: s.mem_bytes for m, s in self.samplers.items()}

    def episode(self, seed: int, slots: int | None = None) -> SimEpisode:
        """A fresh episode: the workload of ``seed`` over ``slots`` (default ``episode_slots``) slots."""
        requests = Workload.from_scenario(self.scenario, seed).requests(slots or self.episode_slots)
        return SimEpisode(requests, self.samplers, self.policy, replace(self.settings, seed=seed))


class EnvBackend(Protocol):
    """What the envs and the T2DRL trainer need of a backend: ``SimBackend`` or ``envs.live.LiveBackend``."""

    scenario: Scenario
    policy: PolicyConfig
    episode_slots: int

    def layout(self, min_steps: int = 1, max_steps: int = 32) -> Layout: ...

    def mem_bytes(self) -> dict[str, int]: ...

    def episode(self, seed: int, slots: int | None = None) -> SimEpisode | LiveEpisode: ...


class CachingEnv(gym.Env):
    """Per-frame joint cache plans (see the module docstring).

    Args:
        backend: the simulated scenario.
        allocation: the inner per-request policy (default: ``FixedSteps(policy.fixed_steps)``).
        min_steps: the feature layout's fewest steps.
        max_steps: the feature layout's most steps.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 (Gymnasium's convention)

    def __init__(
        self, backend: EnvBackend, allocation: AllocationPolicy | None = None, min_steps: int = 1, max_steps: int = 32
    ) -> None:
        self.backend = backend
        self.layout = backend.layout(min_steps, max_steps)
        self.allocation = allocation or FixedSteps(backend.policy.fixed_steps)
        self.configs = cache_configs(self.layout)
        self._mem = backend.mem_bytes()
        self.observation_space = spaces.Box(-1.0, 1.0, (self.layout.caching_obs_dim,), np.float32)
        self.action_space = spaces.Discrete(len(self.configs))
        self._episode: SimEpisode | None = None

    def _observe(self) -> tuple[np.ndarray, dict]:
        assert self._episode is not None
        view = self._episode.frame_view()
        return caching_observation(view, self.layout, self._mem), {
            "action_mask": caching_mask(view, self.layout, self.configs, self._mem)
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._episode = self.backend.episode(int(self.np_random.integers(TRAIN_SEED_BOUND)))
        return self._observe()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._episode is None:
            raise RuntimeError("step: call reset first")
        if not self.action_space.contains(int(action)):
            raise ValueError(f"action: {action!r} is not in 0..{self.action_space.n - 1}")
        episode = self._episode
        episode.end_frame(self.configs[int(action)])
        served = run_requests_until_frame(episode, self.allocation)
        utilities = [r.utility for r in served]
        obs, info = self._observe()
        info.update(
            requests=len(served), hits=sum(r.hit for r in served),
            latency_s=[r.latency_s for r in served if r.outcome == "ok"],
        )  # fmt: skip
        reward = float(np.mean(utilities)) if utilities else 0.0
        return obs, reward, episode.done, False, info


def run_requests_until_frame(episode: SimEpisode, allocation: AllocationPolicy) -> list:
    """Serve the episode's requests with ``allocation`` up to the next frame boundary; their results."""
    served = []
    while not episode.done and not episode.frame_due():
        _, view, info = episode.request_view()
        try:
            choice = allocation.allocate(view, info)
        except NoAgent:
            served.append(episode.fail())
            continue
        served.append(episode.allocate(choice))
    return served


class AllocationEnv(gym.Env):
    """Per-request steps and server (see the module docstring).

    Args:
        backend: the simulated scenario.
        caching: the outer per-frame policy (default: ``RandomCaching`` seeded by each reset).
        min_steps: fewest denoising steps an action maps to.
        max_steps: most denoising steps an action maps to.
        band: the band fraction corrects the square-root rule's (``features.Layout.band_prior``; radio only).
        rule: the steps and server correct the fixed-steps rule's (``features.Layout.rule_steps``: the scenario's
            fixed steps); with ``band`` too an action of 0 plays ``sqrt-band``.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 (Gymnasium's convention)

    def __init__(
        self, backend: EnvBackend, caching: CachingPolicy | None = None, min_steps: int = 1, max_steps: int = 32,
        band: bool = False, rule: bool = False,
    ) -> None:  # fmt: skip
        self.backend = backend
        self.layout = backend.layout(min_steps, max_steps)
        if band:
            self.layout = replace(self.layout, band_prior=True)
        if rule:
            self.layout = replace(self.layout, rule_steps=backend.policy.fixed_steps)
        self.caching = caching
        self._caching: CachingPolicy = caching or RandomCaching(0)
        self.observation_space = spaces.Box(-1.0, 1.0, (self.layout.allocation_obs_dim,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (self.layout.allocation_act_dim,), np.float32)
        self._episode: SimEpisode | None = None
        self._request: tuple = ()  # the next request, its view and info (from ``request_view``)
        self._band = band_prior(self.layout)
        self._prior: float | None = None  # the square-root rule's band fraction for the next request
        self._obs = np.zeros(self.layout.allocation_obs_dim, np.float32)

    def _advance(self) -> np.ndarray:
        """Plan the frames due, then observe the next request (zeros once the episode is over)."""
        episode = self._episode
        assert episode is not None
        while episode.frame_due():
            episode.end_frame(self._caching.plan(episode.frame_view()))
        if episode.done:
            return np.zeros(self.layout.allocation_obs_dim, np.float32)
        _, view, info = self._request = episode.request_view()
        self._prior = self._band.prior_share(view, info) if self._band is not None else None
        return allocation_observation(view, info, self.layout, self._prior)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        workload_seed = int(self.np_random.integers(TRAIN_SEED_BOUND))
        if self.caching is None:
            self._caching = RandomCaching(workload_seed)
        self._episode = self.backend.episode(workload_seed)
        self._band = band_prior(self.layout)  # a fresh estimate of the slot's coming requests per episode
        self._obs = self._advance()
        return self._obs.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        episode = self._episode
        if episode is None or episode.done:
            raise RuntimeError("step: call reset first (the episode is over)")
        _, view, info = self._request  # the view the observation was built from
        try:
            agent, steps, share = decode_allocation(action, view, info, self.layout, self._prior)
            result = episode.serve(agent, steps, share)
        except NoAgent:
            agent, steps, result = "", 0, episode.fail()
        self._obs = self._advance()
        step_info = {"agent": agent, "steps": steps, "outcome": result.outcome, "latency_s": result.latency_s,
                     "hit": result.hit, "quality": result.quality, "bandwidth_share": result.bandwidth_share,
                     "downlink_s": result.downlink_s}  # fmt: skip
        return self._obs.copy(), float(result.utility), episode.done, False, step_info
