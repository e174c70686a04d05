"""The baseline policies on hand-built ClusterViews: deterministic answers that can be checked by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.policies.base import AgentState, ClusterView, Measured, MeasuredTable, NoAgent, RequestInfo
from orchestrator.policies.fixed_steps import FixedSteps
from orchestrator.policies.greedy_latency import GreedyLatency
from orchestrator.policies.lru import LeastRecentlyUsed
from orchestrator.policies.most_popular import MostPopular
from orchestrator.policies.no_cache import NoCache
from orchestrator.policies.popular_spread import PopularSpread
from orchestrator.policies.random_cache import RandomCaching

MODELS = frozenset({"a", "b", "c", "d"})


def _agent(name: str, loaded: set[str] = set(), depth: int = 0, up: bool = True, repo=MODELS) -> AgentState:  # noqa: B006
    return AgentState(name, up, name == "cloud", frozenset(loaded), frozenset(repo), queue_depth=depth)


def _view(*agents: AgentState, k: int = 2, **values) -> ClusterView:
    return ClusterView(now_s=100.0, slot=0, frame=0, agents=agents, cache_models=k, **values)


def test_most_popular_caches_the_top_k_by_total_requests() -> None:
    view = _view(_agent("e1"), _agent("e2", repo={"a", "c"}), _agent("cloud"), requests_total={"a": 3, "b": 9, "c": 5})
    plan = MostPopular().plan(view)
    assert plan == {"e1": {"b", "c"}, "e2": {"c", "a"}}  # e2 lacks b: the next ones it has; the cloud is no cache


def test_most_popular_breaks_ties_by_rank_then_name_and_never_caches_unrequested_models() -> None:
    view = _view(_agent("e1"), k=3, requests_total={"a": 2, "b": 2, "c": 2, "d": 0}, model_rank=("c",))
    assert MostPopular().plan(replace(view, cache_models=2)) == {"e1": {"c", "a"}}
    assert MostPopular().plan(view) == {"e1": {"a", "b", "c"}}  # d was never requested: not cached


def test_popular_spread_deals_the_cluster_top_models_to_different_agents() -> None:
    counts = {"a": 3, "b": 9, "c": 5, "d": 1}
    one_each = _view(_agent("e1"), _agent("e2"), _agent("cloud"), k=1, requests_total=counts)
    assert PopularSpread().plan(one_each) == {"e1": {"b"}, "e2": {"c"}}  # most-popular: b on both
    assert MostPopular().plan(one_each) == {"e1": {"b"}, "e2": {"b"}}
    two_each = _view(_agent("e1"), _agent("e2"), k=2, requests_total=counts)
    assert PopularSpread().plan(two_each) == {"e1": {"b", "a"}, "e2": {"c", "d"}}  # ranks 1, 3 | 2, 4
    narrow = _view(_agent("e1"), _agent("e2", repo={"a", "d"}), k=1, requests_total=counts)
    assert PopularSpread().plan(narrow) == {"e1": {"b"}, "e2": {"a"}}  # e2 lacks c: the next rank it has


def test_popular_spread_deals_again_when_few_models_were_requested() -> None:
    view = _view(_agent("e1"), _agent("e2"), _agent("e3"), k=1, requests_total={"a": 2, "b": 1, "c": 0})
    assert PopularSpread().plan(view) == {"e1": {"a"}, "e2": {"b"}, "e3": {"a"}}  # c never requested
    assert PopularSpread().plan(_view(_agent("e1"), k=2)) == {"e1": frozenset()}  # nothing requested yet


def test_lru_keeps_the_most_recent_and_evicts_the_oldest() -> None:
    view = _view(_agent("e1", loaded={"a", "b"}), last_request_s={"a": 10.0, "b": 30.0, "c": 20.0})
    assert LeastRecentlyUsed().plan(view) == {"e1": {"b", "c"}}  # a is the least recently requested


def test_down_agents_get_no_plan_and_no_cache_empties_every_edge() -> None:
    view = _view(_agent("e1", loaded={"a"}), _agent("e2", up=False), _agent("cloud", loaded={"a"}))
    assert NoCache().plan(view) == {"e1": frozenset()}


def test_random_caching_is_reproducible_and_stays_in_the_repository() -> None:
    view = _view(_agent("e1"), _agent("e2", repo={"a", "b"}), _agent("cloud"), k=2)
    plans = [RandomCaching(seed=7).plan(replace(view, frame=f)) for f in range(20)]
    assert plans[3] == RandomCaching(seed=7).plan(replace(view, frame=3))
    assert all(len(p["e1"]) == 2 and p["e1"] <= MODELS and p["e2"] == {"a", "b"} for p in plans)
    assert len({p["e1"] for p in plans}) > 1 and set(plans[0]) == {"e1", "e2"}


def test_fixed_steps_prefers_the_edge_with_the_shortest_queue_and_keeps_request_steps() -> None:
    view = _view(_agent("e1", {"a"}, depth=3), _agent("e2", {"a"}, depth=1), _agent("e3", depth=0), _agent("cloud"))
    allocation = FixedSteps(6).allocate(view, RequestInfo("r", "a", 1))
    assert (allocation.agent, allocation.steps) == ("e2", 6)
    assert FixedSteps(6).allocate(view, RequestInfo("r", "a", 1, steps=20)).steps == 20


def test_fixed_steps_falls_back_to_the_cloud_and_fails_without_one() -> None:
    view = _view(_agent("e1", {"a"}), _agent("cloud"))
    allocation = FixedSteps(4).allocate(view, RequestInfo("r", "b", 1))
    assert (allocation.agent, allocation.steps) == ("cloud", 4) and "cloud" in allocation.reason
    with pytest.raises(NoAgent, match="model: 'b'"):
        FixedSteps(4).allocate(_view(_agent("e1", {"a"}), _agent("cloud", up=False)), RequestInfo("r", "b", 1))


def _measured(**latency_s: float) -> dict[tuple[str, str, int], Measured]:
    return {(agent, "a", 8): Measured(latency_s=value, count=5) for agent, value in latency_s.items()}


def test_greedy_picks_the_measured_faster_agent() -> None:
    agents = (_agent("e1", {"a"}), _agent("e2", {"a"}), _agent("cloud"))
    view = _view(*agents, measured=_measured(e1=0.5, e2=0.2, cloud=0.3))
    allocation = GreedyLatency(default_steps=8).allocate(view, RequestInfo("r", "a", 1))
    assert (allocation.agent, allocation.steps) == ("e2", 8)
    # a queue makes the faster agent's estimate 0.2 x (1 + 2) = 0.6 > the cloud's 0.3
    busy = _view(_agent("e1", {"a"}, depth=1), _agent("e2", {"a"}, depth=2), _agent("cloud"), measured=view.measured)
    assert GreedyLatency(default_steps=8).allocate(busy, RequestInfo("r", "a", 1)).agent == "cloud"


def test_greedy_tries_an_unmeasured_agent_first_by_queue_depth() -> None:
    view = _view(_agent("e1", {"a"}, depth=2), _agent("e2", {"a"}, depth=1), _agent("cloud", depth=4),
                 measured=_measured(cloud=0.1))  # fmt: skip
    allocation = GreedyLatency(default_steps=8).allocate(view, RequestInfo("r", "a", 1))
    assert allocation.agent == "e2" and "not measured" in allocation.reason


def test_greedy_steps_are_the_smallest_candidate_that_meets_the_floor() -> None:
    measured = {
        ("e1", "a", 4): Measured(latency_s=0.1, quality=0.3, count=2),
        ("e1", "a", 16): Measured(latency_s=0.3, quality=0.8, count=2),
        ("cloud", "a", 8): Measured(latency_s=0.2, quality=0.6, count=2),
        ("e1", "a", 8): Measured(latency_s=0.2, quality=0.4, count=2),  # mean quality at 8 steps: 0.5
    }
    view = _view(_agent("e1", {"a"}), _agent("cloud"), measured=measured)
    greedy = GreedyLatency(default_steps=32, step_candidates=(16, 4, 8))
    assert greedy.allocate(view, RequestInfo("r", "a", 1, quality_floor=0.5)).steps == 8
    assert greedy.allocate(view, RequestInfo("r", "a", 1, quality_floor=0.25)).steps == 4
    assert greedy.allocate(view, RequestInfo("r", "a", 1, quality_floor=0.95)).steps == 32  # none meets it
    assert greedy.allocate(view, RequestInfo("r", "a", 1)).steps == 32  # no floor


def test_measured_table_is_an_ewma_and_bounded() -> None:
    table = MeasuredTable(alpha=0.5, max_keys=1)
    table.update("e1", "a", 8, 1.0, None, 0.2)
    table.update("e1", "a", 8, 3.0, 2.0, None)
    table.update("e2", "a", 8, 9.0, None, None)  # beyond max_keys: ignored and counted
    assert table.snapshot() == {("e1", "a", 8): Measured(latency_s=2.0, energy_j=2.0, quality=0.2, count=2)}
    assert table.ignored == 1
