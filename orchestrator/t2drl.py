"""T2DRL: the two-timescale trainer (DDQN caches per frame, D3PG allocates per request), on the simulator.

One loop runs both timescales on the same episodes, as the paper's algorithm does: at every frame
boundary the caching learner observes the demand of the ended frame and picks a joint cache plan;
within the frame every request is allocated by the actor (steps and server), which stores the
transition and takes ``updates_per_request`` gradient steps; when the frame ends its mean utility is
the caching learner's reward, and the caching learner stores and learns from that transition. After the
actor's ``requests`` the loop goes on for ``caching_requests`` on which only the caching learner learns
(it sees one transition per frame, the actor one per request). The
features and action maps are :mod:`orchestrator.envs.features` (the ``CachingEnv`` /
``AllocationEnv`` spaces), so the learned policies run live unchanged
(:mod:`orchestrator.policies.drl`).

Variants (``--algo``): ``t2drl`` (DDQN + D3PG), ``ddqn+ddpg`` (DDQN + an MLP-actor DDPG),
``random+d3pg`` (random caching + D3PG), and ``ddqn+sac`` / ``ddqn+td3``: Stable-Baselines3's SAC or
TD3 as the actor in the same loop, on the same transitions (:class:`orchestrator.algos.sb3.Actor`), and
``ddqn+sqrt-band``: the DDQN alone learns, from the frames of all the requests, while the square-root band rule
(:mod:`orchestrator.policies.sqrt_band`) allocates inside them (``RULES``; it runs live as that rule).
After training, the learned policies and the heuristic baselines (``random+fixed-steps``,
``most-popular+fixed-steps``, ``popular-spread+fixed-steps``, ``lru+fixed-steps``, and
``popular-spread+sqrt-band``: the band by the square-root rule, :mod:`orchestrator.policies.sqrt_band`) replay the same
held-out workloads in the simulator (:func:`orchestrator.sim.cluster.simulate`); ``result.json``
holds the mean utility, hit ratio and latency of each, and (simulator) the hindsight upper bound of
:mod:`orchestrator.t2drl_bound` on the same workloads: the room any policy has there.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orchestrator.algos import d3pg, ddpg, ddqn
from orchestrator.algos.replay import ReplayBuffer, seed_everything
from orchestrator.caching_reward import ReferenceService
from orchestrator.envs.features import (
    Layout,
    allocation_observation,
    cache_configs,
    caching_mask,
    caching_observation,
    decode_allocation,
)
from orchestrator.envs.t2drl import TRAIN_SEED_BOUND, EnvBackend, SimBackend
from orchestrator.live_demo import summarize
from orchestrator.policies import build_policies
from orchestrator.policies.base import NoAgent
from orchestrator.policies.drl import LearnedAllocation, LearnedCaching
from orchestrator.policies.random_cache import RandomCaching
from orchestrator.policies.sqrt_band import band_prior
from orchestrator.sim.cluster import run_episode
from orchestrator.t2drl_bound import cached_utility_bound, utility_bound
from orchestrator.workload import Workload

ALGOS: dict[str, tuple[str, str]] = {
    "t2drl": ("ddqn", "d3pg"), "ddqn+ddpg": ("ddqn", "ddpg"), "random+d3pg": ("random", "d3pg"),
    "ddqn+sac": ("ddqn", "sac"), "ddqn+td3": ("ddqn", "td3"), "ddqn+sqrt-band": ("ddqn", "sqrt-band"),
}  # fmt: skip
"""``--algo`` -> (caching learner, allocation learner or rule); sac / td3 are Stable-Baselines3's (the ``rl`` extra)"""
RULES = ("sqrt-band",)
"""allocations of ``ALGOS`` that are rules (``orchestrator.policies``), not learners: only the DDQN learns, from
every request, with the rule allocating inside its frames"""
SB3_KEYS = {"exploration_noise": "action_noise", "actor_lr": "learning_rate", "critic_lr": None}
"""the actor settings (``T2DRLConfig.allocation``) under their SB3 names; None: SB3 has no such setting (one
learning rate for actor and critic: the actor's), dropped. TD3 takes the exploration noise; SAC explores by
sampling its own policy and does not use it"""
BASELINES = (
    "random+fixed-steps", "most-popular+fixed-steps", "popular-spread+fixed-steps", "lru+fixed-steps",
    "popular-spread+sqrt-band",
)  # fmt: skip
EVAL_SEED = 2_000_003
"""base workload seed of the held-out evaluation episodes (training seeds are below ``TRAIN_SEED_BOUND``)"""


@dataclass
class T2DRLConfig:
    """The trainer's settings; the learners' own hyper-parameters are in ``caching`` / ``allocation``."""

    seed: int = 0
    """seed of the learners, the exploration and the training workloads"""
    requests: int = 60_000
    """training requests (allocation steps) at most; ``train`` may stop earlier on its time budget"""
    caching_requests: int = 180_000
    """requests after ``requests`` on which only the caching learner learns (the actor allocates without
    exploring or learning): the DDQN gets one transition per frame (~24 requests), and with the actor's
    60 000 requests alone (~2 500 frames) its plans came out no better than popular-spread; 0: none"""
    episode_slots: int | None = 300
    """slots per training episode (None: the backend's, the scenario's 60 on the simulator). 300 slots = 30
    frames, as long as the held-out workloads: popularity drifts every 3 frames through all 3 orders (9
    frames), and 6-frame episodes only ever showed the first two, so the DDQN learned a schedule of those"""
    updates_per_request: int = 1
    """actor/critic updates per update round (after ``allocation.learning_starts``)"""
    allocation_train_every: int = 2
    """allocated requests between the actor's update rounds"""
    caching_updates_per_frame: int = 1
    """DDQN updates per frame (after ``caching.learning_starts`` frames)"""
    min_steps: int = 1
    """fewest denoising steps an allocation picks"""
    max_steps: int = 32
    """most denoising steps an allocation picks"""
    eval_episodes: int = 5
    """held-out workloads (``eval_seeds``) every policy replays after training"""
    eval_slots: int = 300
    """slots per held-out workload"""
    allocation: dict[str, Any] = field(
        default_factory=lambda: {
            "learning_starts": 1_000, "batch_size": 128, "gamma": 0.8, "hidden": (64, 64), "critic_hidden": (128, 128),
            "exploration_noise": 0.2, "actor_lr": 3e-4, "critic_lr": 1e-3,
        }
    )  # fmt: skip
    """overrides of the actor's ``Config`` (d3pg or ddpg). A request's reward is its utility; with gamma > 0 its
    transition leads to the next request's observation (the band a request takes is missing for the next ones of
    its slot), gamma 0.8 looks about five requests (two slots) ahead; gamma 0 stores one-step terminal transitions"""
    caching: dict[str, Any] = field(
        default_factory=lambda: {
            "learning_starts": 50, "batch_size": 64, "gamma": 0.3, "hidden": (64, 64), "epsilon_decay_steps": 4_000,
            "target_update_every": 100, "lr": 1e-3,
        }
    )  # fmt: skip
    """overrides of the DDQN ``Config``; gamma 0.3: a plan mostly pays off within its own frame"""
    band_prior: bool = False
    """(radio scenarios) the actor corrects the square-root rule's band fraction instead of setting it outright
    (``features.Layout.band_prior``). Alone, 5 seeds each for t2drl and ddqn+ddpg (docs/t2drl-log.md): no gain; in
    every run the actor's corrections scored less than the rule's own fraction (``scripts/band_ablation.py``). With
    ``rule_prior`` and the actor's ``action_l2``: the shipped T2DRL (``Makefile``'s ``T2DRL_CONFIG``)"""
    rule_prior: bool = False
    """the actor's steps and server correct the fixed-steps rule's (``features.Layout.rule_steps``: the policy's
    fixed steps on the edge holder with the shortest queue); with ``band_prior`` too an actor that outputs 0 plays
    ``sqrt-band``, and the actor's ``action_l2`` keeps it near the rule where its critic does not pay for leaving it"""
    slot_reward: bool = False
    """True: every request of a slot is rewarded with the mean utility of the slot's requests (the band and the
    edges a request takes are missing for the others of its slot; its own utility pays it to take them); False: its
    own utility. Training only (live fine-tuning rewards each request with its own). Tried on seed 0 with the band
    prior (docs/t2drl-log.md): no better"""
    caching_baseline: bool = False
    """True: the DDQN's frame reward is the mean of utility minus each request's baseline under a reference
    service that no plan changes (:mod:`orchestrator.caching_reward`); False: the frame's mean utility. Off:
    5 seeds each way trained no better caching (docs/t2drl-log.md, "Caching reward with a baseline")"""


def feature_layout(backend: EnvBackend, cfg: T2DRLConfig) -> Layout:
    """The features the learners of ``cfg`` see on ``backend`` (with the band prior where the scenario has a radio,
    and the rule prior)."""
    layout = backend.layout(cfg.min_steps, cfg.max_steps)
    if cfg.band_prior and layout.radio:
        layout = dataclasses.replace(layout, band_prior=True)
    if cfg.rule_prior:
        layout = dataclasses.replace(layout, rule_steps=backend.policy.fixed_steps)
    return layout


def _learner_config(kind: str, seed: int, overrides: dict[str, Any]):
    if kind in ("sac", "td3"):
        from orchestrator.algos import sb3

        config: Any = sb3.Config
        overrides = {SB3_KEYS.get(k, k): v for k, v in overrides.items() if SB3_KEYS.get(k, k) is not None}
        overrides = {**overrides, "algo": kind}
    else:
        config = {"d3pg": d3pg.Config, "ddpg": ddpg.Config, "ddqn": ddqn.Config}[kind]
    known = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"config: {kind} has no field(s) {', '.join(unknown)}")
    return config(seed=seed, **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})


def _actor(kind: str, obs_dim: int, act_dim: int, seed: int, overrides: dict[str, Any]):
    cfg = _learner_config(kind, seed, overrides)
    if kind in ("sac", "td3"):
        from orchestrator.algos import sb3

        return sb3.Actor(obs_dim, act_dim, cfg)
    return d3pg.D3PG(obs_dim, act_dim, cfg) if kind == "d3pg" else ddpg.DDPG(obs_dim, act_dim, cfg)


def train(
    algo: str,
    backend: EnvBackend,
    cfg: T2DRLConfig,
    *,
    time_budget_s: float | None = None,
    log: Callable[[str], None] | None = None,
    log_every_frames: int = 100,
    reference: ReferenceService | None = None,
):
    """Train the two learners of ``algo`` together on episodes of ``backend``.

    ``reference``: the caching reward's reference service when ``cfg.caching_baseline`` (None: built from
    ``backend`` by :func:`reference_service`).

    Returns:
        (caching learner or None for random caching, actor or None for a rule, history): the history has one record per
        ``log_every_frames`` frames: ``frame``, ``requests``, ``wall_s``, ``utility`` (mean over the
        requests since the previous record), ``hit_ratio``, ``epsilon``.
    """
    if algo not in ALGOS:
        raise ValueError(f"algo: {algo!r} is not one of {', '.join(ALGOS)}")
    cache_kind, actor_kind = ALGOS[algo]
    seed_everything(cfg.seed)
    layout = feature_layout(backend, cfg)
    configs = cache_configs(layout)
    mem = backend.mem_bytes()
    rule, actor = None, None
    if actor_kind in RULES:
        rule = build_policies("none", actor_kind, fixed_steps=backend.policy.fixed_steps)[1]
    else:
        actor = _actor(actor_kind, layout.allocation_obs_dim, layout.allocation_act_dim, cfg.seed, cfg.allocation)
        obs_dim, act_dim = layout.allocation_obs_dim, layout.allocation_act_dim
        a_buf = ReplayBuffer(obs_dim, act_dim, actor.cfg.buffer_size, seed=cfg.seed)
        chained = actor.cfg.gamma > 0  # transitions lead to the next request (else one-step, terminal)
    learner = None
    if cache_kind == "ddqn":
        learner = ddqn.DDQN(layout.caching_obs_dim, len(configs), _learner_config("ddqn", cfg.seed, cfg.caching))
        c_buf = ReplayBuffer(layout.caching_obs_dim, 0, learner.cfg.buffer_size, n_actions=len(configs), seed=cfg.seed)
    if learner is None or not cfg.caching_baseline:
        reference = None
    elif reference is None:
        reference = reference_service(backend, cfg)
    rng = np.random.default_rng((cfg.seed, 11))
    start = time.perf_counter()
    history: list[dict] = []
    window: list[tuple[float, bool]] = []
    requests = frames = 0
    total = cfg.requests + (cfg.caching_requests if learner is not None else 0)
    out_of_time = False
    while requests < total and not out_of_time:
        workload_seed = int(rng.integers(TRAIN_SEED_BOUND))
        episode = backend.episode(workload_seed, cfg.episode_slots)
        random_caching = RandomCaching(workload_seed)
        band = band_prior(layout)  # the square-root rule the actor corrects (or None), fresh per episode
        pending = None  # (obs, action, reward) of the frame that is running
        moves = _ActorTransitions(a_buf, chained, cfg.slot_reward) if actor is not None else None
        while not episode.done and requests < total:
            # --- long timescale: a frame boundary ----------------------------------------------
            while episode.frame_due():
                view = episode.frame_view()
                frames += 1
                if learner is None:
                    episode.end_frame(random_caching.plan(view))
                else:
                    obs, mask = caching_observation(view, layout, mem), caching_mask(view, layout, configs, mem)
                    if pending is not None:  # the frame that ends here: its mean utility
                        c_buf.add(pending[0], pending[1], pending[2] / max(pending[3], 1), obs, False, mask)
                    action = learner.act(obs, mask, epsilon=learner.epsilon(frames - 1))
                    pending = [obs, action, 0.0, 0]
                    episode.end_frame(configs[action])
                    learner.env_steps = frames
                    if frames > learner.cfg.learning_starts:
                        for _ in range(cfg.caching_updates_per_frame):
                            learner.update(c_buf.sample(learner.cfg.batch_size))
                if frames % log_every_frames == 0:
                    history.append(_record(frames, requests, start, window, learner))
                    window = []
                    if log is not None:
                        log(_describe(history[-1]))
            if episode.done:
                break
            # --- short timescale: one request ------------------------------------------------
            req, view, info = episode.request_view()
            if actor is None:  # a rule allocates: only the caching learner learns
                try:
                    result = episode.allocate(rule.allocate(view, info))  # type: ignore[union-attr]
                except NoAgent:
                    result = episode.fail()
                actor_learns = False
            else:
                prior = band.prior_share(view, info) if band is not None else None
                obs = allocation_observation(view, info, layout, prior)
                moves.observe(req.slot, obs)  # type: ignore[union-attr]
                actor_learns = requests < cfg.requests  # after: the caching learner's own requests
                if requests < actor.cfg.learning_starts:
                    action = rng.uniform(-1.0, 1.0, layout.allocation_act_dim).astype(np.float32)
                else:
                    action = actor.act(obs, deterministic=not actor_learns)
                try:
                    result = episode.serve(*decode_allocation(action, view, info, layout, prior))
                except NoAgent:
                    result = episode.fail()
                if actor_learns:
                    moves.record(obs, action, result.utility)  # type: ignore[union-attr]
                actor.env_steps = min(requests + 1, cfg.requests)
            requests += 1
            window.append((result.utility, result.hit))
            if pending is not None:
                pending[2] += result.utility - (reference.baseline_of(req) if reference is not None else 0.0)
                pending[3] += 1
            if actor_learns and requests > actor.cfg.learning_starts and requests % cfg.allocation_train_every == 0:
                for _ in range(cfg.updates_per_request):
                    actor.update(a_buf.sample(actor.cfg.batch_size))
            out_of_time = time_budget_s is not None and time.perf_counter() - start >= time_budget_s
            if out_of_time:
                break
        if moves is not None:
            moves.end(episode.done)
        if learner is not None and pending is not None:  # the episode's last frame: terminal
            view = episode.frame_view()
            obs, mask = caching_observation(view, layout, mem), caching_mask(view, layout, configs, mem)
            c_buf.add(pending[0], pending[1], pending[2] / max(pending[3], 1), obs, True, mask)
    history.append(_record(frames, requests, start, window, learner))
    return learner, actor, history


class _ActorTransitions:
    """The actor's transitions, stored once complete: with ``chained``, once the next request's observation is
    known (the episode's last request: terminal; else one-step, terminal); with ``slot_reward``, once the slot has
    ended, each rewarded with the mean utility of the slot's requests (else with its own utility)."""

    def __init__(self, buffer: ReplayBuffer, chained: bool, slot_reward: bool) -> None:
        self.buffer, self.chained, self.slot_reward = buffer, chained, slot_reward
        self.rows: list[list] = []  # [obs, action, utility, next obs or None] of the slot so far
        self.slot: int | None = None

    def observe(self, slot: int, obs: np.ndarray) -> None:
        """The next request's observation (in arrival order, learning or not)."""
        if self.chained and self.rows and self.rows[-1][3] is None:
            self.rows[-1][3] = obs
        if not self.slot_reward or slot != self.slot:
            self._store(done=False)
        self.slot = slot

    def record(self, obs: np.ndarray, action: np.ndarray, utility: float) -> None:
        """A request the actor learns from: its observation, action and utility."""
        self.rows.append([obs, action, utility, None])
        if not self.chained and not self.slot_reward:
            self._store(done=False)

    def end(self, done: bool) -> None:
        """The episode stops: a finished one stores what it holds (its last request terminal); a cut one drops
        what is not complete."""
        if done:
            self._store(done=True)
        self.rows, self.slot = [], None

    def _store(self, done: bool) -> None:
        mean = float(np.mean([row[2] for row in self.rows])) if self.rows else 0.0
        keep = []
        for obs, action, utility, next_obs in self.rows:
            reward = mean if self.slot_reward else utility
            if not self.chained:
                self.buffer.add(obs, action, reward, obs, True)
            elif next_obs is not None:
                self.buffer.add(obs, action, reward, next_obs, False)
            elif done:  # the episode's last request
                self.buffer.add(obs, action, reward, obs, True)
            else:  # waits for the next request's observation
                keep.append([obs, action, utility, next_obs])
        self.rows = keep


LIVE_REFERENCE_DEVICE = "x86-cpu"
"""the device whose model profiles give the caching reward's reference on a live backend (the local cluster)"""


def reference_service(backend: EnvBackend, cfg: T2DRLConfig) -> ReferenceService:
    """The reference service of the caching reward's baseline: the simulator's own profiles and cell, or on a live
    backend the profiles of :data:`LIVE_REFERENCE_DEVICE`."""
    if isinstance(backend, SimBackend):
        settings = backend.settings
        return ReferenceService.from_samplers(
            backend.samplers, settings.hops, cfg.max_steps, backend.policy.bandwidth_share, settings.downlink
        )
    return ReferenceService.for_scenario(backend.scenario, LIVE_REFERENCE_DEVICE, cfg.max_steps)


def _record(frames: int, requests: int, start: float, window: list[tuple[float, bool]], learner) -> dict:
    return {
        "frame": frames, "requests": requests, "wall_s": time.perf_counter() - start,
        "utility": float(np.mean([u for u, _ in window])) if window else None,
        "hit_ratio": float(np.mean([h for _, h in window])) if window else None,
        "epsilon": learner.epsilon(frames) if learner is not None else None,
    }  # fmt: skip


def _describe(record: dict) -> str:
    util = "n/a" if record["utility"] is None else f"{record['utility']:.4f}"
    hits = "n/a" if record["hit_ratio"] is None else f"{record['hit_ratio']:.3f}"
    return f"frame {record['frame']}, request {record['requests']}: utility {util}, hit ratio {hits}"


def eval_seeds(seed: int, episodes: int) -> list[int]:
    """Workload seeds of the held-out evaluation of training seed ``seed``: ``EVAL_SEED + 1000 seed + i``."""
    return [EVAL_SEED + 1000 * seed + i for i in range(episodes)]


def evaluate(
    backend: EnvBackend, policies: dict[str, tuple[object, object]], seeds: list[int], slots: int
) -> dict[str, dict[str, object]]:
    """Replay the held-out workloads of ``seeds`` (``slots`` slots each) with every policy pair.

    Every pair sees the same requests (and, simulated, the same cluster seeds); the summary is over all
    their requests. On a live backend each pair's episodes run one after the other in real time.
    """
    results: dict[str, list] = {name: [] for name in policies}
    for seed in seeds:
        for name, pair in policies.items():
            results[name].extend(run_episode(backend.episode(seed, slots), *pair))  # type: ignore[arg-type]
    return {name: summarize(rows) for name, rows in results.items()}


BOUND_MODEL = "orchestrator/t2drl_bound.py: hindsight band split, every request on an edge at its best steps"


CACHED_BOUND_MODEL = (
    "the same, but only the frame's edge_agents x cache_models models (hindsight) on edges, the rest on the cloud"
)


def eval_bound(backend: SimBackend, seeds: list[int], slots: int, max_steps: int) -> float:
    """The utility bound per request (:mod:`orchestrator.t2drl_bound`) on the held-out workloads of ``seeds``;
    steps up to ``max_steps`` or the fixed policies' steps, whichever is more."""
    workloads = [Workload.from_scenario(backend.scenario, seed).requests(slots) for seed in seeds]
    steps = max(max_steps, backend.policy.fixed_steps)
    return utility_bound(workloads, backend.samplers, backend.settings.downlink, backend.settings.hops, steps)


def eval_cached_bound(backend: SimBackend, seeds: list[int], slots: int, max_steps: int) -> float:
    """:func:`eval_bound` keeping the cache size: at most ``edge_agents x cache_models`` models on the edges per
    frame (:func:`orchestrator.t2drl_bound.cached_utility_bound`)."""
    workloads = [Workload.from_scenario(backend.scenario, seed).requests(slots) for seed in seeds]
    settings = backend.settings
    return cached_utility_bound(
        workloads, backend.samplers, settings.downlink, frame_slots=backend.policy.frame_slots,
        edge_models=settings.edge_agents * backend.policy.cache_models, cloud_delay_s=settings.cloud_delay_ms / 1e3,
        hops=settings.hops, max_steps=max(max_steps, backend.policy.fixed_steps),
    )  # fmt: skip


def baseline_policies(backend: EnvBackend, names: tuple[str, ...] = BASELINES) -> dict[str, tuple[object, object]]:
    """The heuristic (caching, allocation) pairs named ``caching+allocation``."""
    pairs = {}
    for name in names:
        caching, _, allocation = name.partition("+")
        pairs[name] = build_policies(
            caching, allocation, seed=backend.policy.seed, fixed_steps=backend.policy.fixed_steps
        )
    return pairs


def learned_policies(algo: str, learner, actor, backend: EnvBackend, cfg: T2DRLConfig) -> tuple[object, object]:
    """The trained pair as policies: greedy caching (or random) and the deterministic actor."""
    layout = feature_layout(backend, cfg)
    caching = (
        RandomCaching(backend.policy.seed) if learner is None
        else LearnedCaching(lambda o, m: learner.act(o, m), layout, backend.mem_bytes(), name=ALGOS[algo][0])
    )  # fmt: skip
    if actor is None:  # a rule allocates
        return caching, build_policies("none", ALGOS[algo][1], fixed_steps=backend.policy.fixed_steps)[1]
    allocation = LearnedAllocation(lambda o: actor.act(o, deterministic=True), layout, name=ALGOS[algo][1])
    return caching, allocation


def train_t2drl(
    algo: str,
    out: Path,
    *,
    scenario: str = "t2drl",
    device: str = "x86-cpu",
    seed: int = 0,
    time_budget_s: float | None = 600.0,
    overrides: dict[str, Any] | None = None,
    threads: int = 1,
    log: Callable[[str], None] | None = None,
    backend: str = "sim",
    agent_device: str = "auto",
    slot_s: float | None = None,
) -> dict:
    """Train ``algo`` on ``scenario``, evaluate it against the baselines, write ``out``.

    Writes ``result.json`` (config, training history, per-policy summaries on the held-out
    workloads), ``learning_curve.png``, and the checkpoints ``allocation.pt`` and (DDQN variants)
    ``caching.pt``.

    Args:
        backend: ``sim`` (the simulator from ``device``'s model profiles) or ``live`` (a local cluster
            started in ``out/live-cluster`` with ``agent_device`` agents; real time, one request at a time:
            size ``requests``, ``eval_episodes`` and ``eval_slots`` for it).
        slot_s: live: another slot length, s (None: the scenario's).
    """
    known = {f.name for f in dataclasses.fields(T2DRLConfig)}
    unknown = sorted(set(overrides or {}) - known)
    if unknown:
        raise ValueError(f"config: the T2DRL trainer has no field(s) {', '.join(unknown)}")
    cfg = T2DRLConfig(seed=seed, **(overrides or {}))
    for name in ("allocation", "caching"):  # partial overrides extend the defaults
        if overrides and name in overrides:
            setattr(cfg, name, {**getattr(T2DRLConfig(), name), **overrides[name]})
    if backend not in ("sim", "live"):
        raise ValueError(f"backend: {backend!r} is not one of sim, live")
    sim = SimBackend.from_scenario(scenario, device)  # live: its model memory sizes the caching mask
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env: EnvBackend = sim
    live = None
    if backend == "live":
        from orchestrator.envs.live import LiveBackend

        live = env = LiveBackend.start(
            scenario, device=agent_device, slot_s=slot_s, run_dir=out / "live-cluster", mem=sim.mem_bytes()
        )
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        reference = reference_service(env, cfg) if ALGOS[algo][0] == "ddqn" and cfg.caching_baseline else None
        learner, actor, history = train(algo, env, cfg, time_budget_s=time_budget_s, log=log, reference=reference)
        if actor is not None:
            actor.save(out / "allocation.pt")
        if learner is not None:
            learner.save(out / "caching.pt")
        pairs = {algo: learned_policies(algo, learner, actor, env, cfg), **baseline_policies(env)}
        summaries = evaluate(env, pairs, eval_seeds(seed, cfg.eval_episodes), cfg.eval_slots)
        bound: dict[str, object] | None = None
        if live is None:  # the bound models the simulator
            seeds = eval_seeds(seed, cfg.eval_episodes)
            bound = {
                "utility": eval_bound(sim, seeds, cfg.eval_slots, cfg.max_steps), "model": BOUND_MODEL,
                "cached_utility": eval_cached_bound(sim, seeds, cfg.eval_slots, cfg.max_steps),
                "cached_model": CACHED_BOUND_MODEL,
            }  # fmt: skip
    finally:
        torch.set_num_threads(previous)
        if live is not None:
            live.close()
    result = {
        "algo": algo, "caching": ALGOS[algo][0], "allocation": ALGOS[algo][1], "scenario": env.scenario.name,
        "scenario_spec": env.scenario.model_dump(mode="json"), "device": device if live is None else agent_device,
        "profiles": {m: s.profile.provenance.method for m, s in sim.samplers.items()} if live is None else {},
        "backend": backend, "seed": seed, "eval_seeds": eval_seeds(seed, cfg.eval_episodes),
        "eval_episodes": cfg.eval_episodes,
        "eval_slots": cfg.eval_slots, "train_requests": history[-1]["requests"], "train_frames": history[-1]["frame"],
        "train_wall_s": history[-1]["wall_s"], "time_budget_s": time_budget_s, "threads": threads,
        "config": dataclasses.asdict(cfg), "actor_config": dataclasses.asdict(actor.cfg) if actor is not None else None,
        "layout": dataclasses.asdict(feature_layout(env, cfg)),
        "mem_bytes": env.mem_bytes(), "policies": summaries, "curve": history,
        "bound": bound,
        "caching_reward": (
            {"baseline": "reference", "reference": reference.to_json()} if reference is not None else {"baseline": None}
        ),
        "checkpoints": {
            **({"allocation": "allocation.pt"} if actor is not None else {}),
            **({"caching": "caching.pt"} if learner is not None else {}),
        },
    }  # fmt: skip
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    _plot_curve(out, history, f"{algo} on {env.scenario.name} ({backend}, {result['device']}), seed {seed}")
    return result


def _plot_curve(out: Path, history: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in history if r["utility"] is not None]
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    ax.plot([r["requests"] for r in rows], [r["utility"] for r in rows], marker=".", label="mean utility")
    ax2 = ax.twinx()
    ax2.plot(
        [r["requests"] for r in rows], [r["hit_ratio"] for r in rows], color="tab:orange", ls=":", label="hit ratio"
    )
    ax.set(xlabel="training requests", ylabel="utility per request", title=title)
    ax2.set_ylabel("edge hit ratio")
    fig.legend(loc="lower right")
    fig.savefig(out / "learning_curve.png", dpi=120)
    plt.close(fig)
