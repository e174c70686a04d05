"""Router.choose: loaded first, then lowest queue depth; otherwise most free memory; explicit errors."""

from __future__ import annotations

import grpc
import pytest

from orchestrator.config import Limits
from orchestrator.metrics import Metrics
from orchestrator.registry import Capabilities, Registry
from orchestrator.router import RouteError, Router


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
