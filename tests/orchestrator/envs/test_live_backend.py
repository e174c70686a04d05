"""The envs' live backend: a real local cluster (CPU agents running the shipped ONNX models, the daemon
in-process) serves the T2DRL envs' episodes in real time; slots shortened to 0.2 s."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import warnings

import numpy as np
import pytest
from gymnasium.utils.passive_env_checker import env_reset_passive_checker, env_step_passive_checker

from orchestrator.envs.features import cache_configs, steps_of
from orchestrator.envs.live import LiveBackend
from orchestrator.envs.t2drl import AllocationEnv, CachingEnv
from orchestrator.policies.base import AgentState, Allocation, ClusterView, NoAgent, RequestInfo
from orchestrator.policies.external import ExternalAllocation
from orchestrator.radio import Downlink

SLOT_S = 0.2


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    backend = LiveBackend.start(
        "t2drl", device="cpu", slot_s=SLOT_S, episode_slots=20, run_dir=tmp_path_factory.mktemp("live"),
        heartbeat_s=0.5,
    )  # fmt: skip
    try:
        yield backend
    finally:
        backend.close()


def _rows(live: LiveBackend, sql: str) -> list[tuple]:
    store = live.running.daemon.store
    assert store.flush(), "store flush timed out"
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        return db.execute(sql).fetchall()


def test_the_allocation_env_runs_on_the_live_cluster(live) -> None:
    env = AllocationEnv(live)
    # Gymnasium's check_env asserts that the same seed and action give the same observation: measured
    # latencies make a live env non-deterministic, so its API checks run here without that one (the sim
    # backend passes the whole check_env). Stable-Baselines3's check_env runs whole.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checkers' notes on the observation bounds' precision
        obs, info = env_reset_passive_checker(env, seed=3)
        assert env.observation_space.contains(obs) and isinstance(info, dict)
        step = env_step_passive_checker(env, env.action_space.sample())
        assert env.observation_space.contains(step[0]) and isinstance(step[1], float)
        sb3_env_checker = pytest.importorskip("stable_baselines3.common.env_checker")
        sb3_env_checker.check_env(env, warn=True)
    layout = env.layout
    assert layout.radio and env.observation_space.shape == (layout.allocation_obs_dim,)
    obs, _ = env.reset(seed=5)
    action = np.zeros(layout.allocation_act_dim, np.float32)
    action[1 + len(layout.edges)] = 1.0  # the cloud first: it holds every model
    served, done = 0, False
    while not done:
        _, reward, done, _, info = env.step(action)
        result = env._episode.results[-1]
        assert reward == result.utility and np.isfinite(reward)
        if info["outcome"] == "ok":
            served += 1
            assert result.agent == info["agent"] == "cloud"  # the daemon ran it where the env decided
            assert info["steps"] == result.steps == steps_of(0.0, layout) == 6  # 2^2.5: mid 1..32, log scale
            assert result.latency_s > info["downlink_s"] > 0 and 0 < info["bandwidth_share"] <= 1
            assert result.quality is not None and 0 <= result.quality <= 1
    assert served >= 3
    ids = {r for (r,) in _rows(live, "SELECT request_id FROM requests WHERE request_id LIKE 'live-%'")}
    assert {f"live-{env._episode.seed}-{r.id}" for r in env._episode.results if r.outcome == "ok"} <= ids


def test_the_caching_env_applies_its_plans_with_real_loads(live) -> None:
    env = CachingEnv(live)
    configs = cache_configs(env.layout)
    a, b = env.layout.models[:2]
    plan = next(i for i, c in enumerate(configs) if c == {"edge-1": frozenset({a}), "edge-2": frozenset({b})})
    env.reset(seed=11)
    first = len(env._episode.results)
    _, reward, _, _, info = env.step(plan)
    loaded = {s.name: set(s.loaded_models) for s in live.client.status().agents}
    assert loaded["edge-1"] == {a} and loaded["edge-2"] == {b}
    frame = env._episode.results[first:]
    assert info["requests"] == len(frame)
    assert reward == pytest.approx(np.mean([r.utility for r in frame]) if frame else 0.0)
    loads = _rows(live, "SELECT agent, action_json FROM decisions WHERE policy = 'live-env' AND kind = 'cache-load'")
    assert ("edge-1", a) in {(agent, json.loads(action)["model"]) for agent, action in loads}


def test_the_trainer_runs_on_the_live_backend(tmp_path) -> None:
    from orchestrator.t2drl import BASELINES, train_t2drl

    tiny = {
        "requests": 24, "eval_episodes": 1, "eval_slots": 15,
        "allocation": {"learning_starts": 8, "batch_size": 8, "hidden": [16, 16], "critic_hidden": [16, 16]},
    }  # fmt: skip
    result = train_t2drl("random+d3pg", tmp_path, backend="live", agent_device="cpu", slot_s=SLOT_S, overrides=tiny)
    assert result["backend"] == "live" and result["device"] == "cpu" and result["train_requests"] == 24
    assert set(result["policies"]) == {"random+d3pg", *BASELINES} and "popular-spread+sqrt-band" in BASELINES
    for summary in result["policies"].values():
        assert summary["requests"] > 0 and summary["mean_downlink_s"] is not None
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["backend"] == "live" and saved["layout"]["radio"] is True
    assert (tmp_path / "allocation.pt").is_file() and (
        tmp_path / "live-cluster" / "orchestrator.toml"
    ).exists() is False


def _view(up: bool = True) -> ClusterView:
    agent = AgentState("edge-1", up, False, frozenset({"m"}), frozenset({"m"}))
    return ClusterView(now_s=0.0, slot=0, frame=0, agents=(agent,))


def test_the_external_allocation_hands_out_decisions_once() -> None:
    ext = ExternalAllocation(max_pending=2)
    choice = Allocation("edge-1", 4, "env", 0.3)
    ext.decide("r1", choice)
    assert ext.allocate(_view(), RequestInfo("r1", "m", 0)) == choice
    with pytest.raises(NoAgent, match="request_id: 'r1'"):  # handed out once
        ext.allocate(_view(), RequestInfo("r1", "m", 0))
    ext.decide("r2", choice)
    with pytest.raises(NoAgent, match="edge-1"):  # the chosen agent is down
        ext.allocate(_view(up=False), RequestInfo("r2", "m", 0))
    for i in range(3):  # bounded: the oldest decision is dropped and counted
        ext.decide(f"b{i}", choice)
    assert ext.dropped == 1
    with pytest.raises(NoAgent):
        ext.allocate(_view(), RequestInfo("b0", "m", 0))
    assert ext.allocate(_view(), RequestInfo("b2", "m", 0)) == choice


def test_the_live_downlink_matches_the_simulated_one(live) -> None:
    """The daemon's downlink is the scenario's: a served request's downlink time is the Shannon time of its share."""
    radio = live.scenario.radio
    assert radio is not None
    downlink = Downlink(radio.bandwidth_hz, radio.image_bytes, radio.min_share)
    episode = live.episode(seed=21, slots=10)
    while not episode.done:
        episode.request_view()
        result = episode.serve("cloud", 2, 0.5)
        req = episode.requests[episode.index - 1]
        if result.outcome == "ok":
            expected = downlink.tx_time_s(result.bandwidth_share, req.snr_db)
            assert expected <= result.downlink_s <= expected + 0.08  # asyncio.sleep never wakes early
