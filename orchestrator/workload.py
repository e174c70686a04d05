"""The seeded request workload of a scenario: users, Poisson arrivals, Zipf model popularity.

The workload is a pure function of the scenario and the seed, independent of any policy, so every
policy of a run sees the very same requests. Random draws come from ``numpy.random.Generator``
seeded by ``(seed, stream, ...)``:

* user parameters (rate, weights, quality floor): one stream per parameter, one draw per user;
* arrivals: one stream per user, exponential inter-arrival times drawn in fixed chunks, so the
  requests of a shorter run are a prefix of those of a longer one;
* content (model and label): one stream per user, one draw pair per arrival, in arrival order;
* radio (with a ``[radio]`` table): each user's mean SNR on the user-parameter streams, and one
  fading draw per arrival on a stream per user, so the draws above do not change with the radio.

Requests of all users are superposed and ordered by arrival time (ties by user).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from orchestrator.radio import SNR_MAX_DB, SNR_MIN_DB
from profiles.scenario import Scenario

USER_STREAM = 1
ARRIVAL_STREAM = 2
CONTENT_STREAM = 3
RADIO_STREAM = 4
#: Inter-arrival times drawn per generator call (fixed, so that draws do not depend on the horizon).
CHUNK = 256


class WorkloadError(ValueError):
    """The workload cannot be generated as asked; the message names the scenario field."""


@dataclass(frozen=True)
class UserProfile:
    """One user's parameters, drawn from the scenario's ranges.

    Attributes:
        user: user index, 0..U-1.
        rate_per_s: Poisson arrival rate, requests/s.
        w_latency: latency weight, per s.
        w_energy: energy weight, per J.
        quality_floor: least acceptable per-image quality in [0, 1]; None = none.
        snr_db: mean downlink SNR, dB; None without a radio.
    """

    user: int
    rate_per_s: float
    w_latency: float
    w_energy: float
    quality_floor: float | None
    snr_db: float | None = None


@dataclass(frozen=True)
class WorkloadRequest:
    """One request of the workload.

    Attributes:
        id: index in arrival order, 0..N-1.
        user: the requesting user's index.
        arrival_s: arrival time, s from the start of the run.
        slot: slot index, ``floor(arrival_s / slot_s)``.
        frame: caching frame index, ``slot // frame_slots``.
        model: the requested model's name.
        label: the requested class, 0..classes-1.
        deadline_s: deadline, s after ``arrival_s``.
        w_latency: the user's latency weight, per s.
        w_energy: the user's energy weight, per J.
        quality_floor: the user's quality floor in [0, 1], or None.
        snr_db: the downlink SNR of this request (the user's mean with this request's fading, clipped to
            ``orchestrator.radio``'s ``SNR_MIN_DB..SNR_MAX_DB``), dB; None without a radio.
    """

    id: int
    user: int
    arrival_s: float
    slot: int
    frame: int
    model: str
    label: int
    deadline_s: float
    w_latency: float
    w_energy: float
    quality_floor: float | None
    snr_db: float | None = None


def _draw(seed: int, index: int, value: tuple[float, float], count: int) -> list[float]:
    """``count`` uniform draws from ``[low, high]`` on user-parameter stream ``index`` (low == high: exact)."""
    rng = np.random.default_rng((seed, USER_STREAM, index))
    return [float(v) for v in rng.uniform(value[0], value[1], size=count)]


def zipf_pmf(n: int, s: float) -> np.ndarray:
    """Zipf probabilities of ranks 1..n: ``k^-s / sum_j j^-s`` (float64 [n])."""
    weights = np.arange(1, n + 1, dtype=np.float64) ** -float(s)
    return weights / weights.sum()


class Workload:
    """The requests a scenario generates with one seed.

    Attributes:
        scenario: the scenario.
        seed: the seed every draw derives from.
        users: each user's drawn parameters.
    """

    def __init__(self, scenario: Scenario, seed: int, users: tuple[UserProfile, ...]) -> None:
        self.scenario = scenario
        self.seed = seed
        self.users = users
        self._pmf = zipf_pmf(len(scenario.models.names), scenario.models.popularity.zipf_s)

    @classmethod
    def from_scenario(cls, scenario: Scenario, seed: int | None = None) -> Workload:
        """Draw the users' parameters; ``seed`` None = ``scenario.seed``."""
        seed = scenario.seed if seed is None else int(seed)
        if seed < 0:
            raise WorkloadError(f"{scenario.name}: seed: must be >= 0 (got {seed})")
        u, utility = scenario.users, scenario.utility
        rates = _draw(seed, 0, u.rate_per_s, u.count)
        w_lat = _draw(seed, 1, u.w_latency, u.count) if u.w_latency else [utility.w_latency] * u.count
        w_en = _draw(seed, 2, u.w_energy, u.count) if u.w_energy else [utility.w_energy] * u.count
        floors: list[float | None] = [None] * u.count
        if u.quality_floor is not None:
            floors = list(_draw(seed, 3, u.quality_floor, u.count))
        snrs: list[float | None] = [None] * u.count
        if scenario.radio is not None:
            snrs = list(_draw(seed, 4, scenario.radio.snr_db, u.count))
        users = tuple(UserProfile(i, rates[i], w_lat[i], w_en[i], floors[i], snrs[i]) for i in range(u.count))
        return cls(scenario, seed, users)

    def popularity(self, frame: int) -> tuple[str, ...]:
        """Model names by popularity at caching frame ``frame``, most popular first (drift applied)."""
        order = self.scenario.models.order
        k = self.scenario.models.popularity.drift_frames
        shift = (frame // k) % len(order) if k else 0
        return order[shift:] + order[:shift]

    def model_probabilities(self, frame: int) -> dict[str, float]:
        """Probability that a request of frame ``frame`` asks for each model."""
        return {name: float(p) for name, p in zip(self.popularity(frame), self._pmf, strict=True)}

    def expected_requests(self, slots: int | None = None) -> float:
        """Mean number of requests in ``slots`` slots (default: ``timing.slots``)."""
        slots = self.scenario.timing.slots if slots is None else slots
        return sum(user.rate_per_s for user in self.users) * slots * self.scenario.timing.slot_s

    def requests(self, slots: int | None = None) -> list[WorkloadRequest]:
        """All requests arriving in the first ``slots`` slots, in arrival order.

        Args:
            slots: run length, slots (>= 1); None = ``timing.slots``.

        Raises:
            WorkloadError: ``slots`` < 1, or more requests than ``requests.max_per_run`` (never
                truncated silently).
        """
        sc = self.scenario
        slots = sc.timing.slots if slots is None else int(slots)
        if slots < 1:
            raise WorkloadError(f"{sc.name}: timing.slots: must be >= 1 (got {slots})")
        horizon_s = slots * sc.timing.slot_s
        cap = sc.requests.max_per_run
        arrivals = []  # (arrival_s, user)
        for user in self.users:
            arrivals.extend((t, user.user) for t in self._arrivals(user, horizon_s, cap - len(arrivals)))
        arrivals.sort()
        return self._label(arrivals, slots)

    def _arrivals(self, user: UserProfile, horizon_s: float, room: int) -> list[float]:
        """Poisson arrival times of ``user`` before ``horizon_s``; WorkloadError past ``room`` more."""
        rng = np.random.default_rng((self.seed, ARRIVAL_STREAM, user.user))
        times: list[float] = []
        t = 0.0
        while True:
            for gap in rng.exponential(1.0 / user.rate_per_s, size=CHUNK):
                t += float(gap)
                if t >= horizon_s:
                    return times
                if len(times) >= room:
                    self._too_many(horizon_s)
                times.append(t)

    def _too_many(self, horizon_s: float) -> None:
        sc = self.scenario
        slots = round(horizon_s / sc.timing.slot_s)
        raise WorkloadError(
            f"{sc.name}: requests.max_per_run: {slots} slots hold more than {sc.requests.max_per_run} requests "
            f"(about {self.expected_requests(slots):.0f} expected); raise requests.max_per_run or lower "
            "timing.slots / users.rate_per_s"
        )

    def _label(self, arrivals: list[tuple[float, int]], slots: int) -> list[WorkloadRequest]:
        """Draw model and label of each arrival from its user's content stream, in arrival order."""
        sc = self.scenario
        content = {u.user: np.random.default_rng((self.seed, CONTENT_STREAM, u.user)) for u in self.users}
        fading = {u.user: np.random.default_rng((self.seed, RADIO_STREAM, u.user)) for u in self.users}
        cdf = np.cumsum(self._pmf)
        out = []
        for i, (t, user_index) in enumerate(arrivals):
            rng = content[user_index]
            draw, label = float(rng.random()), int(rng.integers(0, sc.requests.classes))
            slot = min(math.floor(t / sc.timing.slot_s), slots - 1)  # t < slots * slot_s; guard rounding
            frame = slot // sc.timing.frame_slots
            rank = min(int(np.searchsorted(cdf, draw, side="right")), len(cdf) - 1)
            user = self.users[user_index]
            snr_db = None
            if sc.radio is not None and user.snr_db is not None:
                gain = float(fading[user_index].exponential(1.0)) if sc.radio.fading == "rayleigh" else 1.0
                snr_db = min(max(user.snr_db + 10.0 * math.log10(max(gain, 1e-12)), SNR_MIN_DB), SNR_MAX_DB)
            out.append(
                WorkloadRequest(
                    id=i,
                    user=user_index,
                    arrival_s=t,
                    slot=slot,
                    frame=frame,
                    model=self.popularity(frame)[rank],
                    label=label,
                    deadline_s=sc.requests.deadline_s,
                    w_latency=user.w_latency,
                    w_energy=user.w_energy,
                    quality_floor=user.quality_floor,
                    snr_db=snr_db,
                )
            )
        return out
