"""Square-root band split: fixed steps on the best holder, and a band fraction from the slot problem's optimum.

The utility bound's slot problem (``orchestrator.t2drl_bound``) is solved by shares in proportion to
``c = sqrt(w t)``: ``w`` the user's latency weight, ``t`` the image's time on the whole band at its SNR. Online,
the slot's later requests are not known; this policy puts the request's ``c`` against the cost it expects from
them: ``rest = k x rate x (1 - slot_elapsed)`` requests (``rate`` an EWMA of requests per slot, counting the
slots without any; ``PRIOR_RATE`` before a slot has ended) of the mean ``c`` seen so far (an EWMA), and takes
``c / (c + rest x c_mean)`` of the free band. A request that misses its deadline even on all the free band
(``features.hopeless``) takes the least share. Everything it reads is in the ``ClusterView`` and
``RequestInfo``: it runs live as in the simulator. Without a radio, or without the request's SNR, it is
``fixed-steps``.
"""

from __future__ import annotations

import math

import orchestrator.envs.features as features  # a module: features imports the policies package in turn
from orchestrator.policies.base import Allocation, ClusterView, RequestInfo
from orchestrator.policies.fixed_steps import FixedSteps

COMING_SCALE = 1.5
"""``k``: the coming requests expected, in units of the rate times the rest of the slot. Picked from 0.5 / 1 / 1.5 /
2 on the 5 validation workloads of ``t2drl_select`` (300 slots, popular-spread caching): 0.590 / 0.676 / 0.688 /
0.679"""
EWMA_ALPHA = 0.05
"""weight of the newest slot in the rate, and of the newest request in the mean cost (while fewer than 1 / alpha
slots or requests were seen: their plain mean)"""
PRIOR_RATE = 1.0
"""requests per slot expected before the first slot has ended"""
DEFAULT_W_LATENCY = 0.5
"""per s: the latency weight of a request that does not carry its user's"""


class SqrtBand:
    """Fixed steps on the best holder (else the cloud); the band fraction by the square-root rule.

    Args:
        steps: denoising steps of every request that does not set its own.
        coming_scale: ``k`` (see the module docstring).
        alpha: EWMA weight of the rate and the mean cost.
    """

    name = "sqrt-band"

    def __init__(self, steps: int = 8, coming_scale: float = COMING_SCALE, alpha: float = EWMA_ALPHA) -> None:
        if not coming_scale >= 0 or not 0 < alpha <= 1:
            raise ValueError(f"coming_scale / alpha: {coming_scale} / {alpha}: need >= 0 / in (0, 1]")
        self.fixed = FixedSteps(steps)
        self.coming_scale, self.alpha = coming_scale, alpha
        self._reset()

    def _reset(self) -> None:
        """Forget what the run so far showed."""
        self.rate: float | None = None  # requests per slot
        self.mean_cost: float | None = None  # of sqrt(w t), s^0.5 per s^0.5
        self._slot: int | None = None
        self._count = 0  # requests seen in ``_slot``
        self._slots = self._costs = 0  # slots ended and costs seen since the run began

    def _count_arrival(self, slot: int) -> None:
        if self._slot is not None and slot < self._slot:  # a new run (the simulator's next episode)
            self._reset()
        if self._slot is not None and slot > self._slot:
            counts = [self._count] + [0] * min(slot - self._slot - 1, 1_000)  # slots without a request count too
            for n in counts:
                self._slots += 1
                self.rate = _ewma(self.rate, n, max(self.alpha, 1.0 / self._slots))
        if slot != self._slot:
            self._slot, self._count = slot, 0
        self._count += 1

    def prior_share(self, view: ClusterView, request: RequestInfo) -> float | None:
        """The request's fraction of the slot's free band by the square-root rule (counts the request in the rate
        and its cost in the mean); None without a downlink or the request's SNR, 0.0 when its image cannot be
        sent at all. Call it once per request, in arrival order (``allocate`` does; so does a learned actor that
        corrects this share, ``features.Layout.band_prior``)."""
        self._count_arrival(view.slot)
        if view.downlink is None or request.snr_db is None:
            return None
        w = request.w_latency if request.w_latency is not None else DEFAULT_W_LATENCY
        t = view.downlink.tx_time_s(1.0, request.snr_db)
        cost = math.sqrt(w * t) if math.isfinite(t) else math.inf
        if not math.isfinite(cost):
            return 0.0
        self._costs += 1
        self.mean_cost = _ewma(self.mean_cost, cost, max(self.alpha, 1.0 / self._costs))
        rate = self.rate if self.rate is not None else PRIOR_RATE
        rest = self.coming_scale * rate * (1.0 - view.slot_elapsed)
        expected = rest * self.mean_cost
        return cost / (cost + expected) if cost + expected > 0 else 1.0

    def allocate(self, view: ClusterView, request: RequestInfo) -> Allocation:
        choice = self.fixed.allocate(view, request)
        share = self.prior_share(view, request)
        if share is None:
            return choice
        if features.hopeless(view, request, choice.agent, choice.steps or self.fixed.steps):
            return Allocation(choice.agent, choice.steps, f"{choice.reason}; band: hopeless, the least share", 0.0)
        return Allocation(
            choice.agent, choice.steps, f"{choice.reason}; band {share:.2f} of the free (sqrt rule)", share
        )


def _ewma(mean: float | None, value: float, weight: float) -> float:
    return value if mean is None else (1.0 - weight) * mean + weight * value


def band_prior(layout: features.Layout) -> SqrtBand | None:
    """The square-root rule whose share a learned actor corrects (``layout.band_prior``), or None. Keep one per
    run of requests: it learns the rate and mean cost from the requests it is shown."""
    return SqrtBand() if layout.band_prior else None
