"""An upper bound on the utility any T2DRL policy can reach on a simulated workload (hindsight, relaxed).

It tells how much room the learned policies have: a gain target above the bound cannot be met on that
workload by any caching and allocation policy. The bound relaxes the simulator (``orchestrator.sim.cluster``)
in the policy's favour, request by request and slot by slot:

- every request is served on an edge agent that already holds its model: no load, no queue, no cloud
  delay; at the steps (``1..max_steps``) that maximise its *expected* utility without the downlink,
  ``b = E[quality] - w_latency (E[compute] + hops x overhead) - w_energy E[energy]`` (the profile means the
  sampler draws from; a draw's compute is truncated at 0, so its mean is no smaller);
- the band of each slot is split in hindsight: the policy knows every request of the slot and its SNR
  when it decides. A request ``i`` sent on share ``s_i`` spends ``t_i / s_i`` on air (``t_i`` its time on
  the whole band), and the shares of a slot sum to at most 1. For the requests it serves (a set ``S``),
  ``sum w_i t_i / s_i`` is least at ``s_i`` proportional to ``sqrt(w_i t_i)``, where it equals
  ``(sum_S sqrt(w_i t_i))^2`` (Cauchy-Schwarz); the other requests fail at their deadline
  (``-w_i deadline_i``, as the simulator scores a miss). ``S`` may hold a request in part (a relaxation
  whose optimum is found greedily, see :func:`slot_bound`);
- deadlines of served requests are not enforced (dropping a constraint only raises the optimum), and a
  request that cannot make its deadline even alone on the whole band may still be dropped, never forced.

Expectations are over the quality, compute and energy draws, which no policy sees before it decides; arrivals
and SNRs are known in advance, which no online policy can do. Hence a bound, not a policy.

:func:`cached_utility_bound` keeps one constraint of the problem that :func:`utility_bound` drops: the edges
hold at most ``edge_models`` distinct models per caching frame (``edge_agents x cache_models``), and a
request whose model none of them holds goes to the cloud (its expected utility at its best steps with the
cloud's mean WAN delay added). Each frame's set is chosen in hindsight (no load time, no memory limit, no
switching cost), so it bounds every policy that serves a request on an edge only where the frame's plan put
its model, as the learned allocation, the fixed-steps policies and the daemon's router do.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

from orchestrator.live_demo import failed
from orchestrator.radio import Downlink
from orchestrator.sim.sampler import ModelSampler
from orchestrator.utility import request_utility
from orchestrator.workload import WorkloadRequest


def expected_service(sampler: ModelSampler, steps: int, hops: float) -> tuple[float, float, float | None]:
    """A request served at once at ``steps``, in expectation: mean quality (0 without a quality profile), mean
    latency without the downlink (compute + ``hops`` gRPC overheads), s, and mean energy, J (None: not measured)."""
    stats = sampler.quality_stats(steps)
    latency_s = sampler.compute_stats(steps)[0] + hops * sampler.overhead_s(steps)
    return (stats[0] if stats is not None else 0.0), latency_s, sampler.mean_energy_j(steps)


def best_served_value(
    req: WorkloadRequest, sampler: ModelSampler, hops: float, max_steps: int, delay_s: float = 0.0
) -> float:
    """The request's largest expected utility over steps ``1..max_steps``, served at once (plus ``delay_s``, e.g.
    the cloud's WAN delay), without the downlink."""
    return best_steps(req, sampler, hops, max_steps, delay_s)[1]


def best_steps(
    req: WorkloadRequest, sampler: ModelSampler, hops: float, max_steps: int, delay_s: float = 0.0
) -> tuple[int, float]:
    """The steps in ``1..max_steps`` with the largest expected utility served at once (plus ``delay_s``), and it."""
    best = (1, -math.inf)
    for steps in range(1, max_steps + 1):
        quality, latency_s, energy_j = expected_service(sampler, steps, hops)
        value = request_utility(quality, latency_s + delay_s, energy_j, req.w_latency, req.w_energy).value
        if value > best[1]:
            best = (steps, value)
    return best


def slot_bound(
    served: Sequence[float], weights: Sequence[float], air_s: Sequence[float], missed: Sequence[float]
) -> float:
    """The largest total utility of one slot's requests when the band is split in hindsight (relaxed).

    With ``g_i = served_i - missed_i`` and ``c_i = sqrt(w_i t_i)``, a served set ``S`` gives
    ``sum missed + sum_S g_i - (sum_S c_i)^2``. Letting each request be served in part (``x_i`` in [0, 1])
    only raises the optimum; the relaxed problem is concave and its optimum is greedy: take requests by
    ``g_i / c_i``, highest first, while ``g_i / c_i >= 2 (C + c_i)`` (``C`` the cost taken so far), and the
    next one in the part where its marginal gain reaches 0.

    Args:
        served: per request, its utility served without the downlink.
        weights: per request, the user's latency weight, per s.
        air_s: per request, its image's time on the whole band, s (inf: it cannot be sent).
        missed: per request, its utility when it fails.
    """
    return _greedy(served, weights, air_s, missed)[0]


def served_set(
    served: Sequence[float], weights: Sequence[float], air_s: Sequence[float], missed: Sequence[float]
) -> list[float]:
    """Per request of :func:`slot_bound`'s optimum, ``x_i sqrt(w_i t_i)``: its part of the band cost (shares of
    the band in proportion to it), 0 for a request left to fail or one with no band cost."""
    return _greedy(served, weights, air_s, missed)[1]


def _greedy(
    served: Sequence[float], weights: Sequence[float], air_s: Sequence[float], missed: Sequence[float]
) -> tuple[float, list[float]]:
    if not len(served) == len(weights) == len(air_s) == len(missed):
        raise ValueError("slot_bound: served, weights, air_s and missed need one entry per request")
    total = float(sum(missed))
    items = []
    parts = [0.0] * len(served)
    for i, (s, m, w, t) in enumerate(zip(served, missed, weights, air_s, strict=True)):
        g, c = s - m, math.sqrt(w * t) if math.isfinite(t) else math.inf
        if g <= 0 or not math.isfinite(c):
            continue  # failing it is no worse, or it cannot be sent at all
        if c == 0:
            total += g  # no band cost (no latency weight)
        else:
            items.append((g, c, i))
    cost = 0.0
    for g, c, i in sorted(items, key=lambda gci: gci[0] / gci[1], reverse=True):
        x = min(1.0, (g / (2.0 * c) - cost) / c)
        if x <= 0:
            break
        total += x * g - (cost + x * c) ** 2 + cost**2
        cost += x * c
        parts[i] = x * c
    return total, parts


def missed_utilities(reqs: Sequence[WorkloadRequest]) -> list[float]:
    """Each request's utility when it fails at its deadline (as the simulator scores a miss)."""
    return [failed(r, "DEADLINE_EXCEEDED", r.deadline_s).utility for r in reqs]


def air_times_s(reqs: Sequence[WorkloadRequest], downlink: Downlink) -> list[float]:
    """Each request's image time on the whole band at its SNR, s (inf without an SNR)."""
    return [downlink.tx_time_s(1.0, r.snr_db if r.snr_db is not None else -math.inf) for r in reqs]


def _slot_total(reqs: Sequence[WorkloadRequest], served: Sequence[float], downlink: Downlink | None) -> float:
    """The bound of one slot's requests whose served utilities (without the downlink) are ``served``."""
    missed = missed_utilities(reqs)
    if downlink is None:
        return sum(max(s, m) for s, m in zip(served, missed, strict=True))
    return slot_bound(served, [r.w_latency for r in reqs], air_times_s(reqs, downlink), missed)


def best_steps_table(
    samplers: Mapping[str, ModelSampler], hops: float, max_steps: int, delay_s: float = 0.0
) -> Callable[[WorkloadRequest], tuple[int, float]]:
    """:func:`best_steps` of a request, remembered per model and user weights (the same for every such request)."""
    best: dict[tuple[str, float, float], tuple[int, float]] = {}

    def lookup(r: WorkloadRequest) -> tuple[int, float]:
        key = (r.model, r.w_latency, r.w_energy)
        if key not in best:
            best[key] = best_steps(r, samplers[r.model], hops, max_steps, delay_s)
        return best[key]

    return lookup


def _value_table(
    samplers: Mapping[str, ModelSampler], hops: float, max_steps: int, delay_s: float = 0.0
) -> Callable[[WorkloadRequest], float]:
    """``best_served_value`` of a request, remembered per model and user weights."""
    table = best_steps_table(samplers, hops, max_steps, delay_s)
    return lambda r: table(r)[1]


def _by_slot(requests: Sequence[WorkloadRequest]) -> dict[int, list[WorkloadRequest]]:
    by_slot: dict[int, list[WorkloadRequest]] = defaultdict(list)
    for req in requests:
        by_slot[req.slot].append(req)
    return by_slot


def utility_bound(
    workloads: Sequence[Sequence[WorkloadRequest]],
    samplers: Mapping[str, ModelSampler],
    downlink: Downlink | None,
    hops: float = 2.0,
    max_steps: int = 32,
) -> float:
    """Mean utility per request that no policy exceeds on ``workloads`` (each one run's requests, its own slots).

    Args:
        workloads: the runs' requests.
        samplers: model -> sampler from its profile (as the simulator uses).
        downlink: the radio downlink; None: no radio (every request is served at its best).
        hops: gRPC round trips per request whose overhead the profile measured once (``SimSettings.hops``).
        max_steps: the most denoising steps a policy may choose.
    """
    edge = _value_table(samplers, hops, max_steps)
    count, total = 0, 0.0
    for requests in workloads:
        for reqs in _by_slot(requests).values():
            total += _slot_total(reqs, [edge(r) for r in reqs], downlink)
        count += len(requests)
    if not count:
        raise ValueError("workloads: the bound needs at least one request")
    return total / count


def cached_utility_bound(
    workloads: Sequence[Sequence[WorkloadRequest]],
    samplers: Mapping[str, ModelSampler],
    downlink: Downlink | None,
    *,
    frame_slots: int,
    edge_models: int,
    cloud_delay_s: float,
    hops: float = 2.0,
    max_steps: int = 32,
) -> float:
    """Mean utility per request that no policy exceeds when the edges hold at most ``edge_models`` distinct models
    per frame of ``frame_slots`` slots (see the module docstring); never above :func:`utility_bound`.

    Args:
        workloads: the runs' requests (a request's frame is ``slot // frame_slots``).
        samplers: model -> sampler from its profile (as the simulator uses).
        downlink: the radio downlink; None: no radio.
        frame_slots: slots per caching frame.
        edge_models: distinct models the edges can hold at once (edge agents x models each keeps).
        cloud_delay_s: the cloud's mean WAN delay, s, added to a request served there.
        hops: gRPC round trips per request whose overhead the profile measured once.
        max_steps: the most denoising steps a policy may choose.
    """
    if frame_slots < 1 or edge_models < 0:
        raise ValueError(f"frame_slots / edge_models: {frame_slots} / {edge_models}: need >= 1 / >= 0")
    edge = _value_table(samplers, hops, max_steps)
    cloud = _value_table(samplers, hops, max_steps, cloud_delay_s)
    plans = list(itertools.combinations(sorted(samplers), min(edge_models, len(samplers))))
    count, total = 0, 0.0
    for requests in workloads:
        frames: dict[int, list[list[WorkloadRequest]]] = defaultdict(list)
        for slot, reqs in _by_slot(requests).items():
            frames[slot // frame_slots].append(reqs)
        for slots in frames.values():
            total += max(
                sum(_slot_total(reqs, [edge(r) if r.model in plan else cloud(r) for r in reqs], downlink)
                    for reqs in slots)
                for plan in plans
            )  # fmt: skip
        count += len(requests)
    if not count:
        raise ValueError("workloads: the bound needs at least one request")
    return total / count
