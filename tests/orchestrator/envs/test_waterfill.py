"""The water-filling env: the exact solver (KKT, brute force), the amender, the reward and the env checkers."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from orchestrator.envs.waterfill import WaterfillEnv, amend, sum_rate, water_filling


def test_water_filling_meets_the_kkt_conditions() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        gains = rng.uniform(0.0, 2.0, n)
        budget = float(rng.uniform(0.1, 5.0))
        p = water_filling(gains, budget)
        assert p.min() >= 0 and p.sum() == pytest.approx(budget, rel=1e-12)
        active = p > 0
        levels = p[active] + 1.0 / gains[active]  # active channels share one water level mu
        mu = levels.mean()
        np.testing.assert_allclose(levels, mu, rtol=1e-10)
        assert np.all(1.0 / gains[~active] >= mu - 1e-12)  # inactive channels' floor is above the water


def test_water_filling_matches_a_brute_force_grid_search() -> None:
    rng = np.random.default_rng(1)
    steps = np.linspace(0.0, 1.0, 201)
    for _ in range(10):
        gains = rng.uniform(0.0, 2.0, 3)
        budget = 3.0
        best = max(
            sum_rate(gains, budget * np.array([a, b, 1 - a - b]))
            for a, b in itertools.product(steps, steps)
            if a + b <= 1 + 1e-12
        )
        optimum = sum_rate(gains, water_filling(gains, budget))
        assert best <= optimum + 1e-12  # no grid point beats it ...
        assert optimum - best < 2e-4  # ... and the grid gets close to it


def test_water_filling_beats_random_feasible_allocations_and_handles_batches_and_zeros() -> None:
    rng = np.random.default_rng(2)
    gains = rng.uniform(0.0, 2.0, (50, 10))
    optimum = sum_rate(gains, water_filling(gains, 3.0))
    for _ in range(20):
        random_powers = 3.0 * rng.dirichlet(np.ones(10), 50) * rng.uniform(0.5, 1.0, (50, 1))
        assert np.all(sum_rate(gains, random_powers) <= optimum + 1e-12)
    rows = np.stack([water_filling(g, 3.0) for g in gains])
    np.testing.assert_allclose(water_filling(gains, 3.0), rows)
    np.testing.assert_array_equal(water_filling(np.array([0.0, 1.0, 0.0]), 2.0), [0.0, 2.0, 0.0])
    np.testing.assert_array_equal(water_filling(np.zeros(3), 2.0), np.zeros(3))
    with pytest.raises(ValueError, match="gains"):
        water_filling(np.array([-1.0, 1.0]), 1.0)


def test_amend_spends_the_budget_with_either_map() -> None:
    a = np.array([[-0.5, 0.5, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(amend(a, 2.0, "abs"), [[0.5, 0.5, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5]])
    np.testing.assert_allclose(amend(a[:1], 2.0, "shift"), [[0.25, 0.75, 0.5, 1.0]] / np.float64(1.25))
    np.testing.assert_allclose(amend(-np.ones(3), 3.0, "shift"), [1.0, 1.0, 1.0])  # all-zero weights: uniform
    with pytest.raises(ValueError, match="mode"):
        amend(a, 1.0, "softmax")


def test_step_rewards_the_gap_to_the_optimum_and_the_optimal_action_closes_it() -> None:
    env = WaterfillEnv()
    gains, info = env.reset(seed=3)
    assert gains.dtype == np.float32 and info == {}
    assert np.all((gains[:5] >= 1) & (gains[:5] <= 2) & (gains[5:] <= 1))
    _, reward, terminated, truncated, info = env.step(np.zeros(10, np.float32))  # uniform power
    assert terminated and not truncated
    assert reward == pytest.approx(info["sum_rate"] - info["optimal_sum_rate"]) and reward < -0.1
    best = water_filling(gains, 3.0)
    _, reward, *_, info = env.step((best / best.max()).astype(np.float32))  # "abs" map: |a| in proportion to p
    assert reward == pytest.approx(0.0, abs=1e-5)
    np.testing.assert_allclose(info["power_w"], best, atol=1e-6)


def test_evaluate_reproduces_the_reference_settings() -> None:
    env = WaterfillEnv()
    gains = env.sample_gains(np.random.default_rng(4), 2000)
    uniform = env.evaluate(lambda obs: np.zeros_like(obs), gains)
    assert uniform["optimal_sum_rate"] == pytest.approx(4.65, abs=0.05)  # RESEARCH.md §1: mean optimum ~ 4.65
    assert uniform["optimality_ratio"] == pytest.approx(uniform["uniform_ratio"])  # zeros: uniform power
    assert uniform["uniform_ratio"] == pytest.approx(0.79, abs=0.01)  # the reference's uniform gap ~ 0.99
    oracle = env.evaluate(lambda obs: water_filling(obs, 3.0) / 3.0, gains)
    assert oracle["optimality_ratio"] == pytest.approx(1.0, abs=1e-6)


def test_invalid_arguments_name_the_field() -> None:
    for kwargs, field in (({"channels": 0}, "channels"), ({"total_power": 0}, "total_power"),
                          ({"amender": "x"}, "amender"), ({"weak_range": (1.0, 0.0)}, "weak_range")):  # fmt: skip
        with pytest.raises(ValueError, match=field):
            WaterfillEnv(**kwargs)


@pytest.mark.parametrize("channels", [1, 2, 10])
def test_gymnasium_env_checker_passes_without_warnings(channels: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker reports most findings as warnings
        check_env(WaterfillEnv(channels), skip_render_check=True)


def test_stable_baselines3_env_checker_passes_without_warnings() -> None:
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_checker.check_env(WaterfillEnv(), warn=True)
    assert [str(w.message) for w in caught if "stable_baselines3" in (w.filename or "")] == []
