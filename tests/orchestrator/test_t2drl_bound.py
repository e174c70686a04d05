"""The hindsight utility bound: the slot problem's relaxed optimum, and no simulated policy above the bound."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from orchestrator.envs.t2drl import SimBackend
from orchestrator.t2drl import BASELINES, baseline_policies, eval_bound, eval_cached_bound, evaluate
from orchestrator.t2drl_bound import best_served_value, cached_utility_bound, slot_bound, utility_bound
from orchestrator.workload import Workload


def _objective(x, served, weights, air_s, missed) -> float:
    """Total utility of serving request i in part x_i, the band split in proportion to sqrt(w_i t_i)."""
    c = np.sqrt(np.asarray(weights) * np.asarray(air_s))
    x = np.asarray(x, np.float64)
    return float(np.sum(missed) + np.sum(x * (np.asarray(served) - np.asarray(missed))) - np.sum(x * c) ** 2)


def test_one_request_alone_gets_the_whole_band() -> None:
    assert slot_bound([0.9], [0.5], [0.4], [-1.5]) == pytest.approx(0.9 - 0.5 * 0.4)
    # two equal requests: half the band each, each on air twice as long
    assert slot_bound([1.0, 1.0], [1.0, 1.0], [0.0625, 0.0625], [0.0, 0.0]) == pytest.approx(2.0 - 4 * 0.0625)
    # a request that cannot be sent, or is worth more failed, is failed
    assert slot_bound([0.9, 0.9], [0.5, 0.5], [0.4, math.inf], [-1.5, -1.5]) == pytest.approx(0.9 - 0.2 - 1.5)
    assert slot_bound([-2.0], [0.5], [0.1], [-1.5]) == pytest.approx(-1.5)


def test_the_slot_bound_is_the_relaxed_optimum() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(1, 7))
        served = rng.uniform(-0.5, 1.0, n)
        weights = rng.uniform(0.0, 1.0, n)
        air_s = rng.exponential(0.5, n)
        missed = -weights * 3.0
        bound = slot_bound(served, weights, air_s, missed)
        best_subset = max(_objective(x, served, weights, air_s, missed) for x in itertools.product((0, 1), repeat=n))
        assert bound >= best_subset - 1e-12  # above every served set
        assert bound <= best_subset + max(0.0, *(served - missed))  # one request in part: dropping it costs its gain
        for x in rng.uniform(0, 1, (200, n)):  # no partial service beats the greedy optimum
            assert _objective(x, served, weights, air_s, missed) <= bound + 1e-9


@pytest.fixture(scope="module")
def backend() -> SimBackend:
    return SimBackend.from_scenario("t2drl", "x86-cpu")


def test_no_simulated_policy_beats_the_bound(backend) -> None:
    seeds, slots = [7, 8], 60
    bound = eval_bound(backend, seeds, slots, max_steps=32)
    summaries = evaluate(backend, baseline_policies(backend, BASELINES), seeds, slots)
    utilities = {name: s["utility"] for name, s in summaries.items()}
    assert all(u < bound for u in utilities.values()), (bound, utilities)
    # the bound is not vacuous: the radio costs it something, and the best heuristic is within reach
    workloads = [Workload.from_scenario(backend.scenario, s).requests(slots) for s in seeds]
    no_radio = utility_bound(workloads, backend.samplers, None, backend.settings.hops, 32)
    assert bound < no_radio <= 1.0
    assert max(utilities.values()) > 0.7 * bound


def test_best_served_value_takes_the_best_steps(backend) -> None:
    req = Workload.from_scenario(backend.scenario, 5).requests(20)[0]
    sampler = backend.samplers[req.model]
    value = best_served_value(req, sampler, backend.settings.hops, 32)
    for steps in (1, 8, 32):
        q = sampler.quality_stats(steps)[0]
        latency_s = sampler.compute_stats(steps)[0] + backend.settings.hops * sampler.overhead_s(steps)
        energy_j = sampler.mean_energy_j(steps) or 0.0
        assert value >= q - req.w_latency * latency_s - req.w_energy * energy_j - 1e-12
    assert value <= 1.0


def test_the_cached_bound_keeps_only_the_frames_best_models_on_the_edges(backend) -> None:
    workload = Workload.from_scenario(backend.scenario, 11).requests(40)
    hops, samplers = backend.settings.hops, backend.samplers
    models = sorted({r.model for r in workload})
    assert len(models) == 3

    def cached(edge_models: int, frame_slots: int = 10, cloud_delay_s: float = 0.2) -> float:
        return cached_utility_bound([workload], samplers, None, frame_slots=frame_slots, edge_models=edge_models,
                                    cloud_delay_s=cloud_delay_s, hops=hops, max_steps=32)  # fmt: skip

    plain = utility_bound([workload], samplers, None, hops, 32)
    assert cached(3) == pytest.approx(plain) and cached(2, cloud_delay_s=0.0) == pytest.approx(plain)
    assert cached(0) < cached(1) < cached(2) < plain  # fewer models on the edges, more requests pay the WAN delay
    # no radio: each frame keeps the models whose requests lose most on the cloud, chosen per frame
    edge = {r.id: best_served_value(r, samplers[r.model], hops, 32) for r in workload}
    cloud = {r.id: best_served_value(r, samplers[r.model], hops, 32, 0.2) for r in workload}
    frames: dict[int, list] = {}
    for r in workload:
        frames.setdefault(r.slot // 10, []).append(r)
    expected = sum(
        max(sum(edge[r.id] if r.model == m else cloud[r.id] for r in reqs) for m in models) for reqs in frames.values()
    )
    assert cached(1) == pytest.approx(expected / len(workload))
    assert cached(1, frame_slots=1) > cached(1, frame_slots=40)  # a plan per slot fits the demand better
    with pytest.raises(ValueError, match="frame_slots"):
        cached(1, frame_slots=0)


def test_no_simulated_policy_beats_the_cached_bound(backend) -> None:
    seeds, slots = [7, 8], 60
    cached = eval_cached_bound(backend, seeds, slots, max_steps=32)
    assert cached < eval_bound(backend, seeds, slots, max_steps=32)
    summaries = evaluate(backend, baseline_policies(backend, BASELINES), seeds, slots)
    assert all(s["utility"] < cached for s in summaries.values()), (cached, summaries)
