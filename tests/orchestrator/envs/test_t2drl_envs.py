"""The T2DRL envs on the sim backend (shipped x86-cpu profiles): API checks, signal, seeding, feasibility."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from orchestrator.envs.features import Layout, cache_configs, decode_allocation, steps_of
from orchestrator.envs.t2drl import AllocationEnv, CachingEnv, SimBackend
from orchestrator.policies.base import AgentState, ClusterView, NoAgent, RequestInfo
from orchestrator.policies.drl import LearnedAllocation, LearnedCaching
from orchestrator.policies.fixed_steps import FixedSteps
from orchestrator.sim.cluster import simulate
from orchestrator.workload import Workload


@pytest.fixture(scope="module")
def backend() -> SimBackend:
    return SimBackend.from_scenario("t2drl", "x86-cpu", episode_slots=30)


def test_both_envs_pass_gymnasium_and_sb3_checkers(backend) -> None:
    for env in (CachingEnv(backend), AllocationEnv(backend)):
        check_env(env, skip_render_check=True)
        sb3_env_checker = pytest.importorskip("stable_baselines3.common.env_checker")
        sb3_env_checker.check_env(env, warn=True)


def test_caching_the_popular_models_pays_more_than_caching_the_rare_one(backend) -> None:
    env = CachingEnv(backend)
    configs = env.configs
    popular = next(i for i, c in enumerate(configs) if c == {"edge-1": {"digits-resmlp-l"}, "edge-2": {"digits-mlp-s"}})
    rare = next(i for i, c in enumerate(configs) if c == {"edge-1": {"digits-ldm"}, "edge-2": {"digits-ldm"}})

    def mean_reward(action: int) -> tuple[float, float]:
        rewards, hits, requests = [], 0, 0
        for seed in range(4):
            env.reset(seed=seed)
            _, reward, _, _, info = env.step(action)  # frame 0: the popularity order is the scenario's rank
            rewards.append(reward)
            hits, requests = hits + info["hits"], requests + info["requests"]
        return float(np.mean(rewards)), hits / requests

    (good, good_hits), (bad, bad_hits) = mean_reward(popular), mean_reward(rare)
    assert good > bad and good_hits > 0.6 > 0.3 > bad_hits


def test_caching_episode_is_seeded_and_ends_after_its_frames(backend) -> None:
    env = CachingEnv(backend)
    runs = []
    for _ in range(2):
        obs, info = env.reset(seed=11)
        trace, done = [obs], False
        while not done:
            obs, reward, done, truncated, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
            trace += [obs, reward]
            assert not truncated
        runs.append(trace)
    assert len(runs[0]) == 1 + 2 * 3  # 30 slots = 3 frames of 10
    assert all(np.array_equal(a, b) for a, b in zip(*runs, strict=True))
    assert env.observation_space.contains(runs[0][-2])


def test_allocation_rewards_follow_steps_and_server(backend) -> None:
    env = AllocationEnv(backend, caching=LearnedCaching(lambda o, m: 0, backend.layout(), name="first"))
    servers = env.layout.servers

    def mean_reward(a0: float, server: str) -> float:
        action = np.full(env.layout.allocation_act_dim, -1.0, np.float32)
        action[0] = a0
        action[1 + servers.index(server)] = 1.0
        env.reset(seed=5)
        rewards, done = [], False
        while not done:
            _, reward, done, _, info = env.step(action)
            rewards.append(reward)
            assert info["agent"] == server or info["agent"] == "cloud"  # the best feasible server
        return float(np.mean(rewards))

    eight_steps = 2 * (np.log2(8) / np.log2(32)) - 1
    edge = mean_reward(eight_steps, "edge-1")
    assert edge > mean_reward(eight_steps, "cloud")  # the WAN delay costs utility
    assert edge > mean_reward(-1.0, "edge-1")  # 1 step: the evaluator barely recognises the digit


def test_steps_map_and_decode_only_picks_servers_holding_the_model() -> None:
    layout = Layout(("a", "b"), ("edge-1", "edge-2"), max_steps=32)
    assert (steps_of(-1, layout), steps_of(1, layout), steps_of(0, layout)) == (1, 32, 6)
    agents = (
        AgentState("edge-1", True, False, frozenset({"a"}), frozenset({"a", "b"})),
        AgentState("edge-2", True, False, frozenset({"b"}), frozenset({"a", "b"})),
        AgentState("cloud", True, True, frozenset(), frozenset({"a", "b"})),
    )
    view = ClusterView(0.0, 0, 0, agents)
    prefers_edge2 = np.array([0.0, 0.5, 1.0, -1.0])  # edge-2, then edge-1, then the cloud
    assert decode_allocation(prefers_edge2, view, RequestInfo("r", "a", 1), layout)[0] == "edge-1"  # edge-2 lacks a
    assert decode_allocation(prefers_edge2, view, RequestInfo("r", "b", 1), layout)[0] == "edge-2"
    down = ClusterView(0.0, 0, 0, (agents[0], dataclasses.replace(agents[2], up=False)))
    with pytest.raises(NoAgent, match="model"):
        decode_allocation(prefers_edge2, down, RequestInfo("r", "b", 1), layout)
    with pytest.raises(ValueError, match="action"):
        decode_allocation(np.zeros(2), view, RequestInfo("r", "a", 1), layout)
    assert len(cache_configs(layout)) == 4 and len(cache_configs(dataclasses.replace(layout, cache_models=2))) == 1


def test_learned_policies_run_unchanged_in_the_simulator(backend) -> None:
    """An actor that always says "8 steps, edge first" is FixedSteps(8) on a one-edge cluster."""
    one_edge = dataclasses.replace(backend, settings=dataclasses.replace(backend.settings, edge_agents=1))
    layout = one_edge.layout()
    a0 = 2 * (np.log2(8) / np.log2(32)) - 1
    actor = LearnedAllocation(lambda obs: np.array([a0, 1.0, -1.0]), layout)
    caching = LearnedCaching(lambda obs, mask: 0, layout)  # always the first plan: edge-1 keeps the first model
    requests = Workload.from_scenario(one_edge.scenario, 3).requests(40)
    ours = simulate(requests, one_edge.samplers, one_edge.policy, one_edge.settings, policies=(caching, actor))

    class FirstModel:
        name = "first"

        def plan(self, view):
            return {"edge-1": frozenset({layout.models[0]})}

    heuristic = simulate(
        requests, one_edge.samplers, one_edge.policy, one_edge.settings, policies=(FirstModel(), FixedSteps(8))
    )
    assert ours == heuristic
    assert {r.agent for r in ours} == {"edge-1", "cloud"} and {r.steps for r in ours} == {8}
