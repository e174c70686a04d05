"""Router.choose: loaded first, then lowest queue depth; otherwise most free memory; explicit errors.
Router.submit: a retry tells the policy the time left."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import grpc
import numpy as np
import pytest

from orchestrator.config import Limits
from orchestrator.metrics import Metrics
from orchestrator.policies.base import Allocation
from orchestrator.registry import Capabilities, Registry
from orchestrator.router import Routed, RouteError, Router, SubmitSpec


def _router() -> tuple[Router, Registry]:
    registry = Registry(heartbeat_s=1.0, max_agents=8)
    for name, mem_used, loaded, depth in (("a", 7, {"m1"}, 3), ("b", 2, {"m1"}, 1), ("c", 1, set(), 0)):
        entry = registry.register(name, f"h:{len(name)}", Capabilities(mem_total_bytes=10, models=("m1", "m2")))
        entry.loaded_models, entry.queue_depth, entry.mem_used_bytes = loaded, depth, mem_used
    return Router(registry, link=None, store=None, metrics=Metrics(), limits=Limits()), registry  # type: ignore[arg-type]


def test_a_loaded_agent_with_the_shortest_queue_wins() -> None:
    router, _ = _router()
    choice = router.choose("m1")
    assert (choice.entry.name, choice.load) == ("b", False)
    assert router.choose("m1", exclude=frozenset({"b"})).entry.name == "a"  # the retry goes elsewhere


def test_an_unloaded_model_goes_to_the_agent_with_the_most_free_memory() -> None:
    router, _ = _router()
    choice = router.choose("m2")
    assert (choice.entry.name, choice.load) == ("c", True)  # 9 of 10 bytes free


def test_a_model_being_loaded_somewhere_is_waited_for_there_not_loaded_again_elsewhere() -> None:
    router, registry = _router()

    async def while_loading_on_a() -> tuple[str, bool]:
        async with router._load_locks.setdefault(("a", "m2"), asyncio.Lock()):
            choice = router.choose("m2")  # c has the most free memory, but a is loading m2
            return choice.entry.name, choice.load

    assert asyncio.run(while_loading_on_a()) == ("a", True)
    assert router.choose("m2").entry.name == "c"  # the load is over (and failed: not loaded): memory decides
    registry.get("a").loaded_models.add("m2")
    assert (router.choose("m2").entry.name, router.choose("m2").load) == ("a", False)


def test_nowhere_to_run_is_an_explicit_error() -> None:
    router, registry = _router()
    with pytest.raises(RouteError, match="model: 'm3' is in no up agent's repository") as err:
        router.choose("m3")
    assert err.value.code == grpc.StatusCode.NOT_FOUND
    for name in ("a", "b", "c"):
        registry.unreachable(name, "test")
    with pytest.raises(RouteError, match="no agent is up") as err:
        router.choose("m1")
    assert err.value.code == grpc.StatusCode.UNAVAILABLE


class OrderedPolicy:
    """Allocates each try to the next of ``order`` and records the time limit it is told."""

    def __init__(self, order: list[str]) -> None:
        self.order, self.told_s, self.failed = order, [], []

    def observe(self, model: str) -> None:
        pass

    def allocate(self, spec: SubmitSpec, exclude: frozenset[str]) -> Allocation:
        self.told_s.append(spec.deadline_s)
        return Allocation(self.order[len(self.told_s) - 1], 4, "ordered")

    async def score(self, spec: SubmitSpec, routed: Routed) -> Routed:
        return routed

    def fail(self, spec: SubmitSpec, outcome: str, latency_s: float) -> None:
        self.failed.append((spec.request_id, outcome, latency_s))


class FailFirstLink:
    """Agent ``a`` answers UNAVAILABLE after ``delay_s``; every other agent generates at once."""

    def __init__(self, name: str, delay_s: float) -> None:
        self.name, self.delay_s = name, delay_s

    async def generate(self, model, label, steps, seed, request_id, timeout_s):
        if self.name == "a":
            await asyncio.sleep(self.delay_s)
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "gone")
        return SimpleNamespace(images=[np.zeros((8, 8))], steps=steps, total_time_s=0.0, queue_time_s=0.0,
                               compute_time_s=0.0, energy_j=None, energy_source="unavailable")  # fmt: skip


class NullStore:
    def add_request(self, record: object) -> None:
        pass


def test_a_retry_tells_the_policy_the_time_left_of_the_request_not_its_whole_limit() -> None:
    router, _ = _router()
    router.link = lambda entry: FailFirstLink(entry.name, delay_s=0.3)
    router.store = NullStore()  # type: ignore[assignment]
    router.policy = policy = OrderedPolicy(["a", "b"])  # type: ignore[assignment]
    routed = asyncio.run(router.submit(SubmitSpec("r1", "m1", 0, deadline_s=2.0)))
    assert (routed.agent, routed.attempts) == ("b", 2)
    first, retry = policy.told_s
    assert 1.9 < first <= 2.0 and retry <= first - 0.3  # the first try took 0.3 s of the 2 s
    assert policy.failed == []


def test_a_request_the_policy_placed_that_fails_is_handed_back_to_it_with_the_time_it_took() -> None:
    router, _ = _router()
    router.link = lambda entry: FailFirstLink(entry.name, delay_s=0.2)
    router.store = NullStore()  # type: ignore[assignment]
    router.policy = policy = OrderedPolicy(["a", "a"])  # type: ignore[assignment]
    with pytest.raises(RouteError):  # a is marked down after its first try: the second choice is refused
        asyncio.run(router.submit(SubmitSpec("r2", "m1", 0, deadline_s=2.0)))
    [(request_id, outcome, latency_s)] = policy.failed
    assert (request_id, outcome) == ("r2", "UNAVAILABLE") and 0.2 <= latency_s < 1.0
    with pytest.raises(RouteError, match="label"):  # refused before the router took it: no failure to score
        asyncio.run(router.submit(SubmitSpec("r3", "m1", -1)))
    assert len(policy.failed) == 1
