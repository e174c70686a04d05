"""What a policy sees and what it answers: ``ClusterView``, ``CachingPolicy``, ``AllocationPolicy``.

Two timescales (T2DRL): a *caching* policy plans, once per frame of F slots, which models each
edge agent keeps loaded (``plan``); an *allocation* policy picks, per request, the agent and the
number of denoising steps (``allocate``). Both read a frozen ``ClusterView``: the registry's agents
as they were when the view was taken, the demand seen so far, and small exponentially weighted
means (EWMA) of what served requests measured, per (agent, model, steps).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from orchestrator.radio import Downlink


@dataclass(frozen=True)
class AgentState:
    """One agent in a view.

    Attributes:
        name: the agent's name.
        up: whether the registry has it up.
        is_cloud: the cloud agent (holds every model behind an emulated WAN delay; never cached).
        loaded: models loaded on it now.
        repository: models it can load.
        mem_free_bytes: free device memory, bytes, if known.
        mem_total_bytes: device memory, bytes, if known.
        power_w: the device's power draw in its latest telemetry sample, W; None when it does not measure power.
        queue_depth: requests queued or running there (as the agent last reported).
        inflight: requests the daemon has in flight there.
    """

    name: str
    up: bool
    is_cloud: bool
    loaded: frozenset[str]
    repository: frozenset[str]
    mem_free_bytes: int | None = None
    mem_total_bytes: int | None = None
    queue_depth: int = 0
    inflight: int = 0
    power_w: float | None = None


@dataclass(frozen=True)
class Measured:
    """EWMA of served requests on one (agent, model, steps).

    Attributes:
        latency_s: end-to-end latency, s (requests that loaded the model first are left out); None: none yet.
        energy_j: device energy, J; None when never measured.
        quality: per-image quality in [0, 1]; None when never scored.
        count: requests folded in.
    """

    latency_s: float | None = None
    energy_j: float | None = None
    quality: float | None = None
    count: int = 0


def _ewma(old: float | None, new: float | None, alpha: float) -> float | None:
    if new is None:
        return old
    return new if old is None else (1.0 - alpha) * old + alpha * new


class MeasuredTable:
    """The EWMAs per (agent, model, steps); at most ``max_keys`` keys (new keys beyond are ignored).

    Args:
        alpha: weight of the newest value, (0, 1].
        max_keys: keys kept at most.
    """

    def __init__(self, alpha: float = 0.3, max_keys: int = 10_000) -> None:
        self.alpha = alpha
        self.max_keys = max_keys
        self.ignored = 0  # updates dropped because the table was full
        self._values: dict[tuple[str, str, int], Measured] = {}

    def update(
        self, agent: str, model: str, steps: int, latency_s: float | None, energy_j: float | None, quality: float | None
    ) -> None:
        """Fold one served request in (None values leave their mean as it is)."""
        key = (agent, model, steps)
        old = self._values.get(key)
        if old is None:
            if len(self._values) >= self.max_keys:
                self.ignored += 1
                return
            old = Measured()
        a = self.alpha
        self._values[key] = Measured(
            _ewma(old.latency_s, latency_s, a), _ewma(old.energy_j, energy_j, a), _ewma(old.quality, quality, a),
            old.count + 1,
        )  # fmt: skip

    def snapshot(self) -> dict[tuple[str, str, int], Measured]:
        return dict(self._values)


@dataclass(frozen=True)
class ClusterView:
    """A read-only snapshot of the cluster for one decision.

    Attributes:
        now_s: when it was taken, ``time.monotonic()`` seconds.
        slot: the slot index since the policy loop started.
        frame: the frame index (``slot // frame_slots``).
        agents: every known agent.
        requests_frame: requests per model seen in the current frame.
        requests_total: requests per model seen since the start.
        last_request_s: the latest request time per model, ``time.monotonic()`` seconds.
        measured: EWMA per (agent, model, steps).
        model_rank: models in a preferred order (ties of popularity are broken by it, then by name).
        cache_models: models each edge agent may keep loaded.
        band_free: fraction of the radio downlink's band still free in this slot (``orchestrator.radio``);
            None without a radio.
        downlink: the radio downlink the band belongs to (None without a radio).
        slot_elapsed: fraction of the current slot already past, [0, 1).
    """

    now_s: float
    slot: int
    frame: int
    agents: tuple[AgentState, ...]
    requests_frame: Mapping[str, int] = field(default_factory=dict)
    requests_total: Mapping[str, int] = field(default_factory=dict)
    last_request_s: Mapping[str, float] = field(default_factory=dict)
    measured: Mapping[tuple[str, str, int], Measured] = field(default_factory=dict)
    model_rank: tuple[str, ...] = ()
    cache_models: int = 1
    band_free: float | None = None
    slot_elapsed: float = 0.0
    downlink: Downlink | None = None

    def agent(self, name: str) -> AgentState | None:
        return next((a for a in self.agents if a.name == name), None)

    def edges(self) -> list[AgentState]:
        """Up edge agents (not the cloud), by name."""
        return sorted((a for a in self.agents if a.up and not a.is_cloud), key=lambda a: a.name)

    def cloud(self) -> AgentState | None:
        """The up cloud agent, if any."""
        return next((a for a in self.agents if a.up and a.is_cloud), None)

    def rank_key(self, model: str) -> tuple[int, str]:
        """Tie-break order: the position in ``model_rank`` (absent: last), then the name."""
        rank = self.model_rank.index(model) if model in self.model_rank else len(self.model_rank)
        return rank, model

    def most_requested(self) -> list[str]:
        """Models requested at least once since the start, most requested first (ties: ``rank_key``)."""
        requested = (m for m, n in self.requests_total.items() if n > 0)
        return sorted(requested, key=lambda m: (-self.requests_total[m], *self.rank_key(m)))

    def mean_quality(self, model: str, steps: int) -> float | None:
        """Count-weighted mean of the measured quality of ``model`` at ``steps`` over all agents."""
        pairs = [(m.quality, m.count) for (_, mdl, s), m in self.measured.items() if mdl == model and s == steps]
        pairs = [(q, n) for q, n in pairs if q is not None]
        total = sum(n for _, n in pairs)
        return None if not total else sum(q * n for q, n in pairs) / total


@dataclass(frozen=True)
class RequestInfo:
    """What an allocation policy knows of a request."""

    request_id: str
    model: str
    label: int
    steps: int | None = None  # the steps the user asked for, if any (they are kept)
    quality_floor: float | None = None
    snr_db: float | None = None  # the downlink SNR the user reported, dB (None: no radio)
    w_latency: float | None = None  # the user's latency weight, per s (None: not known)
    w_energy: float | None = None  # the user's energy weight, per J (None: not known)
    deadline_s: float | None = None  # time left of the request's limit when it is allocated, s (None: not known)


@dataclass(frozen=True)
class Allocation:
    """Where a request runs, with how many denoising steps (None: the model's default) and which
    fraction of the slot's free downlink band (None: the ``[policy] bandwidth_share`` default)."""

    agent: str
    steps: int | None
    reason: str
    bandwidth_share: float | None = None


class NoAgent(Exception):
    """No agent can serve the request (the message says why)."""


class CachingPolicy(Protocol):
    """Plans the models each up edge agent keeps loaded; called once per frame."""

    name: str

    def plan(self, view: ClusterView) -> dict[str, frozenset[str]]:
        """Models per edge agent (at most ``view.cache_models`` each); agents left out are unchanged."""
        ...


class AllocationPolicy(Protocol):
    """Picks the agent and steps of one request; called per request. Raises NoAgent when nowhere."""

    name: str

    def allocate(self, view: ClusterView, request: RequestInfo) -> Allocation: ...
