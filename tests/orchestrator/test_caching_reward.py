"""The caching learner's per-request baseline: its values, its JSON form, and the variance it takes out."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.caching_reward import ReferenceService
from orchestrator.envs.t2drl import SimBackend
from orchestrator.policies.fixed_steps import FixedSteps
from orchestrator.policies.random_cache import RandomCaching
from orchestrator.sim.cluster import run_episode
from orchestrator.t2drl_bound import best_served_value
from orchestrator.workload import Workload

MODEL = "digits-resmlp-l"


@pytest.fixture(scope="module")
def backend() -> SimBackend:
    return SimBackend.from_scenario("t2drl", "x86-cpu")


def _reference(backend: SimBackend, radio: bool = True) -> ReferenceService:
    s = backend.settings
    return ReferenceService.from_samplers(
        backend.samplers, s.hops, 32, backend.policy.bandwidth_share, s.downlink if radio else None
    )


def test_without_a_radio_the_baseline_is_the_best_expected_utility_at_once_on_an_edge(backend) -> None:
    ref = _reference(backend, radio=False)
    for req in Workload.from_scenario(backend.scenario, 3).requests(20):
        expected = best_served_value(req, backend.samplers[req.model], backend.settings.hops, 32)
        assert ref.baseline_of(req) == pytest.approx(expected)


def test_the_baseline_pays_for_the_images_air_time_and_scores_a_miss_when_it_cannot_arrive(backend) -> None:
    ref = _reference(backend)
    alone = _reference(backend, radio=False).baseline(MODEL, 0.5, 0.01, None, 3.0)
    good, poor = ref.baseline(MODEL, 0.5, 0.01, 20.0, 3.0), ref.baseline(MODEL, 0.5, 0.01, 0.0, 3.0)
    air_s = backend.settings.downlink.tx_time_s(backend.policy.bandwidth_share, 20.0)
    assert good == pytest.approx(alone - 0.5 * air_s) and poor < good
    # at -25 dB the image needs longer than the deadline on the reference share: the request is a miss
    assert backend.settings.downlink.tx_time_s(backend.policy.bandwidth_share, -25.0) > 3.0
    assert ref.baseline(MODEL, 0.5, 0.01, -25.0, 3.0) == pytest.approx(-0.5 * 3.0)
    assert ref.baseline("not-a-model", 0.4, 0.01, 20.0, 2.0) == pytest.approx(-0.8)


def test_the_reference_round_trips_through_json_and_a_malformed_one_is_named(backend) -> None:
    ref = _reference(backend)
    again = ReferenceService.from_json(ref.to_json())
    assert again == ref
    for req in Workload.from_scenario(backend.scenario, 5).requests(10):
        assert again.baseline_of(req) == ref.baseline_of(req)
    data = ref.to_json()
    with pytest.raises(ValueError, match=r"caching_reward\.reference: malformed"):
        ReferenceService.from_json({k: v for k, v in data.items() if k != "steps"})
    with pytest.raises(ValueError, match=r"caching_reward\.reference\.share"):
        ReferenceService.from_json({**data, "share": 0.0})


def test_the_baseline_takes_most_of_the_frame_rewards_variance_out(backend) -> None:
    """On simulated frames (random caching, fixed steps), the frames' mean of utility less baseline varies far
    less than their mean utility: the noise the caching learner's reward carries falls (measured ~0.3 x)."""
    ref = _reference(backend)
    plain, adjusted = [], []
    for seed in range(3):
        requests = {r.id: r for r in Workload.from_scenario(backend.scenario, seed).requests(100)}
        results = run_episode(backend.episode(seed, 100), RandomCaching(seed), FixedSteps(backend.policy.fixed_steps))
        frames: dict[int, list[tuple[float, float]]] = {}
        for r in results:
            req = requests[r.id]
            frames.setdefault(req.frame, []).append((r.utility, r.utility - ref.baseline_of(req)))
        for rows in frames.values():
            plain.append(np.mean([u for u, _ in rows]))
            adjusted.append(np.mean([a for _, a in rows]))
    assert len(plain) == 30
    assert np.var(adjusted) < 0.6 * np.var(plain)
