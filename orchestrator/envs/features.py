"""What the T2DRL learners see and how their outputs become decisions, built from a ``ClusterView`` only.

The live daemon and the simulator both hand policies a :class:`~orchestrator.policies.base.ClusterView`
(and a :class:`~orchestrator.policies.base.RequestInfo` per request), so features computed here are the
same on either backend: a policy trained in the simulator runs unchanged on the live cluster.

Caching (once per frame, discrete):

- observation: per model, its share of the requests of the frame that just ended and of all requests
  so far; per (edge agent, model), whether it is loaded, and whether it has room for it: 1 when the
  model is loaded there or its size fits in the agent's free memory (as its telemetry last reported
  it) plus what the agent holds now (it could take the place of the agent's models), 0 when not, -1
  when the free memory or the model's size is not known; the frame index modulo ``period`` as a phase
  in [0, 1) (popularity drifts every few frames). Memory enters as these flags, not as the free
  fraction itself: a plan should change when a model stops fitting, not when memory the models do not
  need comes and goes (a DDQN fed the raw fraction moved its plans with it while nothing bound);
- action: an index into :func:`cache_configs`, every joint choice of ``cache_models`` models per edge
  agent; a configuration is masked out when its models do not fit an agent's memory (when known).

Allocation (per request, continuous, actions in [-1, 1]):

- observation: the requested model (one-hot), the user's quality floor (0 when none), the user's
  latency weight / ``W_LATENCY_SCALE`` and energy weight / ``W_ENERGY_SCALE`` (each clipped at 1; -1
  when not known; the live daemon takes them from ``SubmitRequest.w_latency`` / ``w_energy``, else its
  ``[policy]`` weights); per server (each edge agent, then the cloud): whether it can serve the request
  now (the model loaded; the cloud always), its requests in flight / ``INFLIGHT_SCALE`` (clipped at
  1), the measured mean latency of the model there (EWMA over step counts, s, clipped at
  ``LATENCY_CAP_S``; -1 when none), the measured mean energy of a request of the model there (J,
  the same way, clipped at ``ENERGY_CAP_J``; -1 when none: the device does not measure power), and the
  device's power draw in its latest telemetry (W, clipped at ``POWER_CAP_W``; -1 when not measured);
  with a radio downlink (``Layout.radio``) also the request's spectral efficiency / ``SE_SCALE``
  (clipped at 1), the fraction of the slot's band still free, the fraction of the slot past, and the
  requests still to come in the slot (the mean requests per slot so far times the rest of the slot)
  / ``REMAINING_SCALE`` (clipped at 1): what the band given now takes from. "So far" counts the
  slots of the policy clock, which starts before the first request (the simulator's one frame
  early, the live daemon's a few seconds), so the estimate runs low for the first slots;
- action: ``a[0]`` sets the steps on a log scale between ``min_steps`` and ``max_steps``; ``a[1:S+1]``
  score the S servers, and the request goes to the best-scoring server that can serve it; with a
  radio, the last entry sets the fraction of the slot's free band the request takes, ``(a + 1) / 2``
  (the band ledger raises it to its least share). With ``Layout.band_prior`` the observation ends with the
  fraction the square-root rule gives the request (:meth:`orchestrator.policies.sqrt_band.SqrtBand.prior_share`;
  -1 when it has none), and the last action entry corrects that fraction on the log-odds scale:
  ``sigmoid(logit(prior) + BAND_PRIOR_LOGIT a)``, so an actor that outputs 0 plays the rule and learns what to add
  to it (off by default: over 10 trained runs the learned corrections lowered the utility against the rule's
  own fraction, docs/t2drl-log.md). With ``Layout.rule_steps`` the steps and the server correct the fixed-steps rule's
  too (``rule_steps`` steps on the edge holder with the shortest queue, else the cloud:
  :class:`~orchestrator.policies.fixed_steps.FixedSteps`): ``a[0]`` moves the steps from ``rule_steps`` on the
  log scale (by up to half the log range, either way), the rule's server scores ``RULE_SERVER_BONUS`` more,
  and the observation ends with a one-hot of the rule's server; with both priors an actor that outputs 0 plays
  ``sqrt-band`` (a residual actor: it learns only what to change in the rule). Every action maps onto a
  feasible decision (the
  "action amender"). The amender also gives a *hopeless* request the least share: one whose image
  would miss its deadline even on all of the slot's free band after the measured latency of the model
  on the chosen server (:func:`hopeless`). The band it would have taken goes to the requests after it;
  the request fails either way.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from orchestrator.policies.base import AgentState, ClusterView, NoAgent, RequestInfo
from orchestrator.policies.fixed_steps import FixedSteps
from orchestrator.radio import spectral_efficiency

INFLIGHT_SCALE = 10.0
"""requests in flight that count as a full queue in the observation"""
LATENCY_CAP_S = 1.0
"""measured latencies above this are clipped in the observation, s"""
SE_SCALE = 10.0
"""spectral efficiency, bit/s/Hz, that counts as 1 in the observation (30 dB ~ 10 bit/s/Hz)"""
REMAINING_SCALE = 5.0
"""requests still to come in a slot that count as 1 in the observation"""
W_LATENCY_SCALE = 2.0
"""a user's latency weight, per s, that counts as 1 in the observation"""
W_ENERGY_SCALE = 0.1
"""a user's energy weight, per J, that counts as 1 in the observation"""
ENERGY_CAP_J = 10.0
"""measured energies per request above this are clipped in the observation, J"""
POWER_CAP_W = 100.0
"""device power draws above this are clipped in the observation, W (a Jetson draws 5-60 W)"""
BAND_PRIOR_LOGIT = 3.0
"""with a band prior, how far the action moves the prior's log-odds: +-3 multiplies its odds by up to e^3 ~ 20"""
PRIOR_CLIP = 1e-3
"""a band prior is taken within [PRIOR_CLIP, 1 - PRIOR_CLIP] before its log-odds"""
RULE_SERVER_BONUS = 1.0
"""with a rule prior, what the rule's server adds to its score: another server needs a score 1 above it"""


@dataclass(frozen=True)
class Layout:
    """The fixed names the features are laid out by: models, edge agents, the cloud, step range.

    Attributes:
        models: model names, in a fixed order.
        edges: edge agent names, in a fixed order.
        cloud: the cloud agent's name.
        cache_models: models each edge agent keeps loaded.
        min_steps: fewest denoising steps an allocation picks.
        max_steps: most denoising steps an allocation picks.
        period: frames of the phase feature (the popularity drift period; 1: no phase).
        radio: requests also get a share of a radio downlink's band (observation and action grow).
        band_prior: (radio only) the band fraction corrects the square-root rule's (the observation grows by it).
        rule_steps: None, or the steps of the fixed-steps rule whose steps and server the action corrects (the
            observation grows by a one-hot of the rule's server).
    """

    models: tuple[str, ...]
    edges: tuple[str, ...]
    cloud: str = "cloud"
    cache_models: int = 1
    min_steps: int = 1
    max_steps: int = 32
    period: int = 1
    radio: bool = False
    band_prior: bool = False
    rule_steps: int | None = None

    def __post_init__(self) -> None:
        if not self.models or len(set(self.models)) != len(self.models):
            raise ValueError(f"models: {self.models!r} must be distinct names, at least one")
        if not self.edges or len(set(self.edges)) != len(self.edges) or self.cloud in self.edges:
            raise ValueError(f"edges: {self.edges!r} must be distinct names, at least one, without the cloud")
        if not 0 <= self.cache_models <= len(self.models):
            raise ValueError(f"cache_models: {self.cache_models} must be in 0..{len(self.models)}")
        if not 1 <= self.min_steps <= self.max_steps:
            raise ValueError(f"min_steps, max_steps: {self.min_steps}, {self.max_steps} need 1 <= min <= max")
        if self.period < 1:
            raise ValueError(f"period: {self.period} must be >= 1")
        if self.band_prior and not self.radio:
            raise ValueError("band_prior: needs a radio downlink (radio = true)")
        if self.rule_steps is not None and not self.min_steps <= self.rule_steps <= self.max_steps:
            raise ValueError(f"rule_steps: {self.rule_steps} must be in min_steps..max_steps")

    @property
    def servers(self) -> tuple[str, ...]:
        return (*self.edges, self.cloud)

    @property
    def caching_obs_dim(self) -> int:
        return 2 * len(self.models) + 2 * len(self.edges) * len(self.models) + 1

    @property
    def allocation_obs_dim(self) -> int:
        radio = (4 if self.radio else 0) + (1 if self.band_prior else 0)
        rule = len(self.servers) if self.rule_steps is not None else 0
        return len(self.models) + 3 + 5 * len(self.servers) + radio + rule

    @property
    def allocation_act_dim(self) -> int:
        return 1 + len(self.servers) + (1 if self.radio else 0)


def cache_configs(layout: Layout) -> list[dict[str, frozenset[str]]]:
    """Every joint cache plan: ``cache_models`` models per edge agent (in ``layout.edges`` order)."""
    per_agent = [frozenset(c) for c in itertools.combinations(layout.models, layout.cache_models)]
    return [
        dict(zip(layout.edges, choice, strict=True))
        for choice in itertools.product(per_agent, repeat=len(layout.edges))
    ]


def _room(agent: AgentState | None, model: str, mem_bytes: Mapping[str, int]) -> float:
    """1.0: ``model`` is loaded on the up ``agent`` or fits in its free memory plus the memory of the models it
    holds; 0.0: it does not fit; -1.0: the agent is down or its free memory or a size involved is not known."""
    if agent is None or not agent.up:
        return -1.0
    if model in agent.loaded:
        return 1.0
    size = mem_bytes.get(model)
    if agent.mem_free_bytes is None or size is None or not all(m in mem_bytes for m in agent.loaded):
        return -1.0
    return 1.0 if size <= agent.mem_free_bytes + sum(mem_bytes[m] for m in agent.loaded) else 0.0


def _scaled(value: float | None, cap: float) -> float:
    """``value / cap`` clipped to [0, 1]; -1 when None."""
    return -1.0 if value is None else min(max(value / cap, 0.0), 1.0)


def caching_observation(view: ClusterView, layout: Layout, mem_bytes: Mapping[str, int]) -> np.ndarray:
    """The caching observation (float32, in [-1, 1]) of ``view``; ``mem_bytes``: model -> bytes it takes loaded."""
    frame_total = sum(view.requests_frame.get(m, 0) for m in layout.models)
    total = sum(view.requests_total.get(m, 0) for m in layout.models)
    share_frame = [view.requests_frame.get(m, 0) / frame_total if frame_total else 0.0 for m in layout.models]
    share_total = [view.requests_total.get(m, 0) / total if total else 0.0 for m in layout.models]
    loaded, room = [], []
    for name in layout.edges:
        agent = view.agent(name)
        held = agent.loaded if agent is not None and agent.up else frozenset()
        loaded.extend(1.0 if m in held else 0.0 for m in layout.models)
        room.extend(_room(agent, m, mem_bytes) for m in layout.models)
    phase = (view.frame % layout.period) / layout.period
    return np.asarray([*share_frame, *share_total, *loaded, *room, phase], np.float32)


def caching_mask(
    view: ClusterView, layout: Layout, configs: Sequence[dict[str, frozenset[str]]], mem_bytes: dict[str, int]
) -> np.ndarray:
    """Which ``configs`` fit: every agent's models within its memory (unknown memory or size: fits)."""
    mask = np.ones(len(configs), bool)
    for i, plan in enumerate(configs):
        for name, models in plan.items():
            agent = view.agent(name)
            total = agent.mem_total_bytes if agent is not None else None
            if total is not None and sum(mem_bytes.get(m, 0) for m in models) > total:
                mask[i] = False
    if not mask.any():
        mask[:] = True  # nothing fits: let every plan through and the agents refuse loudly
    return mask


def _measured_mean(view: ClusterView, agent: str, model: str, field: str) -> float | None:
    """Count-weighted mean over step counts of one ``Measured`` field of ``model`` on ``agent``."""
    pairs = [(getattr(m, field), m.count) for (a, mdl, _), m in view.measured.items() if a == agent and mdl == model]
    pairs = [(v, n) for v, n in pairs if v is not None]
    count = sum(n for _, n in pairs)
    return None if not count else sum(v * n for v, n in pairs) / count


def _measured_latency_s(view: ClusterView, agent: str, model: str) -> float | None:
    return _measured_mean(view, agent, model, "latency_s")


def can_serve(view: ClusterView, layout: Layout, server: str, model: str) -> bool:
    """An up edge agent with ``model`` loaded, or the up cloud agent holding it."""
    agent = view.agent(server)
    if agent is None or not agent.up:
        return False
    if server == layout.cloud:
        return model in agent.repository or model in agent.loaded
    return model in agent.loaded


def allocation_observation(
    view: ClusterView, request: RequestInfo, layout: Layout, prior: float | None = None
) -> np.ndarray:
    """The allocation observation (float32, in [-1, 1]) of ``request`` in ``view``; ``prior``: the square-root
    rule's band fraction for it (read with ``layout.band_prior`` only)."""
    onehot = [1.0 if m == request.model else 0.0 for m in layout.models]
    floor = request.quality_floor if request.quality_floor is not None else 0.0
    weights = [_scaled(request.w_latency, W_LATENCY_SCALE), _scaled(request.w_energy, W_ENERGY_SCALE)]
    per_server = []
    for name in layout.servers:
        agent = view.agent(name)
        inflight = 0 if agent is None else agent.inflight + agent.queue_depth
        per_server += [
            1.0 if can_serve(view, layout, name, request.model) else 0.0,
            min(inflight / INFLIGHT_SCALE, 1.0),
            _scaled(_measured_latency_s(view, name, request.model), LATENCY_CAP_S),
            _scaled(_measured_mean(view, name, request.model, "energy_j"), ENERGY_CAP_J),
            _scaled(agent.power_w if agent is not None and agent.up else None, POWER_CAP_W),
        ]
    radio = []
    if layout.radio:
        se = spectral_efficiency(request.snr_db) if request.snr_db is not None else 0.0
        free = view.band_free if view.band_free is not None else 1.0
        elapsed = min(max(view.slot_elapsed, 0.0), 1.0)
        rate_per_slot = sum(view.requests_total.values()) / max(view.slot + elapsed, 1.0)
        remaining = min(rate_per_slot * (1.0 - elapsed) / REMAINING_SCALE, 1.0)
        radio = [min(se / SE_SCALE, 1.0), free, elapsed, remaining]
        if layout.band_prior:
            radio.append(-1.0 if prior is None else min(max(prior, 0.0), 1.0))
    rule = []
    if layout.rule_steps is not None:
        server = rule_server(view, layout, request)
        rule = [1.0 if name == server else 0.0 for name in layout.servers]
    return np.asarray([*onehot, floor, *weights, *per_server, *radio, *rule], np.float32)


def rule_server(view: ClusterView, layout: Layout, request: RequestInfo) -> str | None:
    """The server the fixed-steps rule picks for ``request`` (``FixedSteps``: the edge holder of its model with the
    shortest queue, else the cloud), None when none can serve it or it is not one of ``layout.servers``."""
    try:
        agent = FixedSteps().allocate(view, request).agent
    except NoAgent:
        return None
    return agent if agent in layout.servers else None


def hopeless(view: ClusterView, request: RequestInfo, server: str, steps: int) -> bool:
    """Whether ``request`` on ``server`` at ``steps`` misses its deadline whatever band share it gets.

    Its image cannot be sent faster than on all of the slot's free band, after the model's measured
    latency there (at ``steps`` when measured, else over all step counts, else taken as 0). False when
    the request's deadline or SNR, or the view's downlink, is not known.
    """
    if view.downlink is None or request.deadline_s is None or request.snr_db is None:
        return False
    free = view.band_free if view.band_free is not None else 1.0
    at_steps = view.measured.get((server, request.model, steps))
    latency_s = at_steps.latency_s if at_steps is not None else None
    if latency_s is None:
        latency_s = _measured_latency_s(view, server, request.model)
    return view.downlink.tx_time_s(free, request.snr_db) + (latency_s or 0.0) > request.deadline_s


def steps_of(a0: float, layout: Layout) -> int:
    """``a0`` in [-1, 1] -> steps on a log scale from ``min_steps`` (-1) to ``max_steps`` (+1); with
    ``layout.rule_steps``, from ``rule_steps`` (0) by up to half the log range either way (clipped to the range)."""
    lo, hi = math.log2(layout.min_steps), math.log2(layout.max_steps)
    a = float(np.clip(a0, -1.0, 1.0))
    if layout.rule_steps is not None:
        log_steps = math.log2(layout.rule_steps) + a * (hi - lo) / 2.0
    else:
        log_steps = lo + (a + 1.0) / 2.0 * (hi - lo)
    return int(min(max(round(2.0**log_steps), layout.min_steps), layout.max_steps))


def decode_allocation(
    action: np.ndarray, view: ClusterView, request: RequestInfo, layout: Layout, prior: float | None = None
) -> tuple[str, int, float | None]:
    """The server, steps and band fraction (None without a radio) an allocation action means; a
    :func:`hopeless` request gets band fraction 0 (the band ledger raises it to the least share). With
    ``layout.band_prior`` the action corrects ``prior`` (:func:`corrected_share`; no prior: ``(a + 1) / 2``); with
    ``layout.rule_steps`` the steps and the server correct the fixed-steps rule's (:func:`steps_of`,
    :data:`RULE_SERVER_BONUS`).

    Raises:
        NoAgent: no server can serve the request.
    """
    a = np.asarray(action, np.float64).reshape(-1)
    if a.shape[0] != layout.allocation_act_dim:
        raise ValueError(f"action: length {a.shape[0]}, expected {layout.allocation_act_dim}")
    feasible = [i for i, name in enumerate(layout.servers) if can_serve(view, layout, name, request.model)]
    if not feasible:
        raise NoAgent(f"model: '{request.model}' is loaded on no up edge agent and no cloud agent is up with it")
    scores = a[1 : 1 + len(layout.servers)].copy()
    if layout.rule_steps is not None:
        rule = rule_server(view, layout, request)
        if rule is not None:
            scores[layout.servers.index(rule)] += RULE_SERVER_BONUS
    best = max(feasible, key=lambda i: (scores[i], -i))
    server, steps = layout.servers[best], steps_of(a[0], layout)
    share = None
    if layout.radio:
        a_share = float(np.clip(a[-1], -1.0, 1.0))
        share = corrected_share(prior, a_share) if layout.band_prior and prior is not None else (a_share + 1.0) / 2.0
    if share is not None and hopeless(view, request, server, steps):
        share = 0.0
    return server, steps, share


def corrected_share(prior: float, a: float) -> float:
    """``prior`` (a band fraction) moved by ``a`` in [-1, 1] on the log-odds scale: ``sigmoid(logit(prior) +
    BAND_PRIOR_LOGIT a)``; a prior of 0 (its image cannot be sent) stays 0."""
    if prior <= 0.0:
        return 0.0
    p = min(max(prior, PRIOR_CLIP), 1.0 - PRIOR_CLIP)
    z = math.log(p / (1.0 - p)) + BAND_PRIOR_LOGIT * float(np.clip(a, -1.0, 1.0))
    return 1.0 / (1.0 + math.exp(-z))
