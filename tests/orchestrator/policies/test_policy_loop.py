"""The policy loop in a live in-process cluster: two simulated edge agents, a ``cloud`` agent, the daemon.

``[policy] caching = "most-popular"``, ``allocation = "fixed-steps"``, slots of 0.2 s, frames of
3 slots, one model per edge agent, the shipped digits models (so the evaluator scores every image).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable

import pytest

HEARTBEAT_S = 0.5  # down after 3 silent intervals: generous, a first model load in the suite stalls the 2 cores
POPULAR, UNREQUESTED = "digits-mlp-s", "digits-ldm"


def wait_for(check: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition") -> None:
    """Poll every 20 ms; fail after ``timeout_s``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, policy_cluster):
    policy = {
        "caching": "most-popular", "allocation": "fixed-steps", "slot_s": 0.2, "frame_slots": 3, "cache_models": 1,
        "fixed_steps": 4, "cloud_agent": "cloud", "w_latency": 0.5, "w_energy": 0.01,
    }  # fmt: skip
    with policy_cluster(tmp_path_factory.mktemp("cluster"), policy, ("edge-a", "edge-b"), HEARTBEAT_S) as running:
        yield running


def _rows(cluster, sql: str, *args) -> list[tuple]:
    assert cluster.daemon.store.flush(), "store flush timed out"
    with contextlib.closing(sqlite3.connect(cluster.daemon.store.path)) as db:
        return db.execute(sql, args).fetchall()


def _loaded(cluster, agent: str) -> set[str]:
    return next(set(a.loaded_models) for a in cluster.client.status().agents if a.name == agent)


def test_status_lists_the_active_policies(cluster) -> None:
    assert cluster.client.status().policies == ("caching:most-popular", "allocation:fixed-steps")


def test_a_popular_model_is_cached_on_the_edges_and_then_served_there(cluster) -> None:
    client = cluster.client
    first = client.submit(POPULAR, label=3, seed=1, request_id="p-0")
    assert first.agent == "cloud" and first.steps == 4 and first.steps_source == "policy"  # no edge had it
    for i in range(1, 3):
        client.submit(POPULAR, label=i, seed=i, request_id=f"p-{i}")

    def cached() -> bool:
        rows = _rows(cluster, "SELECT agent, action_json FROM decisions WHERE kind = 'cache-load'")
        done = {agent for agent, action in rows if json.loads(action)["model"] == POPULAR and json.loads(action)["ok"]}
        return done == {"edge-a", "edge-b"}

    wait_for(cached, what="a frame boundary that caches the popular model on both edges")
    wait_for(lambda: POPULAR in _loaded(cluster, "edge-a") and POPULAR in _loaded(cluster, "edge-b"),
             what="the agents to report the model loaded")  # fmt: skip
    later = [client.submit(POPULAR, label=i, seed=10 + i, request_id=f"q-{i}") for i in range(4)]
    assert {r.agent for r in later} <= {"edge-a", "edge-b"} and all(r.steps == 4 for r in later)
    assert all(not r.loaded_model for r in later)
    action = json.loads(_rows(cluster, "SELECT action_json FROM decisions WHERE kind = 'cache-load' LIMIT 1")[0][0])
    assert action["time_s"] > 0 and action["error"] is None  # the measured cost of the load
    # one allocation decision per request, naming the agent it ran on
    allocations = _rows(cluster, "SELECT request_id, agent FROM decisions WHERE kind = 'allocation'")
    assert ("p-0", "cloud") in allocations and len(allocations) == 7


def test_every_served_request_has_a_reward_with_a_utility(cluster) -> None:
    served = _rows(cluster, "SELECT request_id, quality, latency_s FROM requests WHERE outcome = 'ok'")
    assert len(served) == 7
    rewards = {
        json.loads(detail)["request_id"]: (reward, json.loads(detail))
        for reward, detail in _rows(cluster, "SELECT reward, detail_json FROM rewards WHERE policy = 'fixed-steps'")
    }
    assert set(rewards) == {request_id for request_id, _, _ in served}
    for request_id, quality, latency_s in served:
        reward, detail = rewards[request_id]
        assert quality is not None and 0.0 <= quality <= 1.0 and detail["quality"] == pytest.approx(quality)
        expected = quality - 0.5 * latency_s - (detail["energy_term"] or 0.0)
        assert reward == pytest.approx(expected, abs=1e-3)  # latency as the router measured it
        assert detail["energy_available"] == (detail["energy_j"] is not None)


def test_a_model_nobody_requested_is_not_cached(cluster) -> None:
    for agent in ("edge-a", "edge-b"):
        assert UNREQUESTED not in _loaded(cluster, agent)
    models = [
        json.loads(a)["model"] for (a,) in _rows(cluster, "SELECT action_json FROM decisions WHERE kind LIKE 'cache-%'")
    ]
    assert UNREQUESTED not in models and "digits-resmlp-l" not in models
    assert cluster.daemon.policy_loop.frames_planned >= 1
    assert "edgetb_policy_decisions_total" in cluster.daemon.metrics.render().decode()
