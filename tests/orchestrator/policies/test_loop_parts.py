"""Parts of the policy loop without agents: applying a caching plan, the router's use of it, rewards."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import grpc
import numpy as np
import pytest

from orchestrator.config import Limits, PolicyConfig
from orchestrator.metrics import Metrics
from orchestrator.policies.base import Allocation
from orchestrator.policy_loop import PolicyLoop
from orchestrator.radio import Downlink
from orchestrator.registry import Capabilities, Registry
from orchestrator.router import Routed, RouteError, Router, SubmitSpec
from orchestrator.serde import TelemetryRow


class FakeStore:
    def __init__(self) -> None:
        self.rows: list[tuple[str, tuple]] = []

    def put(self, table: str, row: tuple) -> bool:
        self.rows.append((table, row))
        return True


class FakeLink:
    """Records calls; ``fail`` maps a model to the exception its load raises."""

    def __init__(self, calls: list[tuple[str, str, str]], name: str, fail: dict[str, Exception]) -> None:
        self.calls, self.name, self.fail = calls, name, fail

    async def load(self, model: str, timeout_s: float) -> None:
        self.calls.append(("load", self.name, model))
        if model in self.fail:
            raise self.fail[model]

    async def unload(self, model: str, timeout_s: float) -> None:
        self.calls.append(("unload", self.name, model))


def _loop(fail: dict[str, Exception] | None = None, **policy: object) -> tuple[PolicyLoop, list, FakeStore]:
    registry = Registry(heartbeat_s=1.0, max_agents=8)
    for name in ("e1", "e2", "cloud", "down"):
        registry.register(name, "h:1", Capabilities(models=("a", "b", "c")), loaded_models={"c"})
    registry.unreachable("down", "test")
    calls: list[tuple[str, str, str]] = []
    store = FakeStore()
    config = PolicyConfig(**{"caching": "most-popular", "allocation": "fixed-steps", "cache_models": 1, **policy})
    loop = PolicyLoop(
        config,
        registry,
        lambda e: FakeLink(calls, e.name, fail or {}),
        store,
        Metrics(),
        Limits(),  # type: ignore[arg-type]
    )
    return loop, calls, store


def _decisions(store: FakeStore) -> list[tuple[str, str, dict]]:
    return [(row[2], row[3], json.loads(row[5])) for table, row in store.rows if table == "decisions"]


def test_a_plan_unloads_first_then_loads_and_leaves_the_cloud_and_down_agents_alone() -> None:
    loop, calls, store = _loop()
    for model in ("a", "a", "b"):
        loop.observe(model)
    asyncio.run(loop.plan_frame())
    assert calls == [("unload", "e1", "c"), ("load", "e1", "a"), ("unload", "e2", "c"), ("load", "e2", "a")]
    assert loop.registry.entries["e1"].loaded_models == {"a"} and loop.registry.entries["cloud"].loaded_models == {"c"}
    kinds = [(kind, agent, action["model"], action["ok"]) for kind, agent, action in _decisions(store)]
    assert kinds == [("cache-unload", "e1", "c", True), ("cache-load", "e1", "a", True),
                     ("cache-unload", "e2", "c", True), ("cache-load", "e2", "a", True)]  # fmt: skip
    asyncio.run(loop.plan_frame())  # nothing changed: no calls, no rows
    assert len(calls) == 4 and len(_decisions(store)) == 4


def test_a_failed_load_is_recorded_and_the_plan_goes_on() -> None:
    unavailable = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "gone")
    loop, _, store = _loop(fail={"a": unavailable}, cache_models=2)
    for model in ("a", "b"):
        loop.observe(model)
    asyncio.run(loop.plan_frame())  # does not raise
    failed = [a for kind, agent, a in _decisions(store) if kind == "cache-load" and not a["ok"]]
    assert len(failed) == 2 and failed[0]["error"] == "UNAVAILABLE: gone"
    assert loop.registry.entries["e1"].loaded_models == {"b"}  # b loaded; a failed; c unloaded
    assert loop.metrics.decisions.labels("most-popular", "cache-load")._value.get() == 4


def test_the_router_asks_the_policy_and_reports_when_it_has_no_agent() -> None:
    loop, _, store = _loop()
    router = Router(loop.registry, link=None, store=None, metrics=loop.metrics, limits=Limits())  # type: ignore[arg-type]
    router.policy = loop
    choice = router._choose(SubmitSpec("r1", "c", 0), frozenset())
    assert (choice.entry.name, choice.load, choice.steps) == ("e1", False, 8)  # e1 has c loaded
    choice = router._choose(SubmitSpec("r2", "c", 0), frozenset({"e1", "e2"}))
    assert (choice.entry.name, choice.load) == ("cloud", False)  # excluded agents count as down
    with pytest.raises(RouteError, match="model: 'zz'") as err:
        router._choose(SubmitSpec("r3", "zz", 0), frozenset())
    assert err.value.code == grpc.StatusCode.UNAVAILABLE
    assert [row[4] for table, row in store.rows if table == "decisions"] == ["r1", "r2"]


class RecordingAllocation:
    """An allocation policy that records what it is told of each request and sends it to e1."""

    name = "recording"

    def __init__(self) -> None:
        self.seen: list = []

    def allocate(self, view, request):
        self.seen.append(request)
        return Allocation("e1", 4, "recorded")


def test_the_allocation_policy_is_told_the_users_latency_weight_or_the_default() -> None:
    loop, _, _ = _loop(w_latency=0.7)
    recording = RecordingAllocation()
    loop.allocation = recording
    loop.allocate(SubmitSpec("r1", "c", 0, w_latency=1.5, w_energy=0.2, deadline_s=2.5), frozenset())
    loop.allocate(SubmitSpec("r2", "c", 0), frozenset())
    assert [(r.request_id, r.w_latency) for r in recording.seen] == [("r1", 1.5), ("r2", 0.7)]
    assert [r.w_energy for r in recording.seen] == [0.2, loop.config.w_energy]
    assert [r.deadline_s for r in recording.seen] == [2.5, None]  # the router fills in the default limit first
    assert loop.weights(SubmitSpec("r1", "c", 0, w_latency=1.5, w_energy=0.2)) == (1.5, 0.2)
    assert loop.weights(SubmitSpec("r2", "c", 0)) == (0.7, loop.config.w_energy)


def test_with_a_radio_the_view_carries_the_downlink() -> None:
    assert _loop()[0].view().downlink is None
    radio = {"bandwidth_hz": 2e6, "image_bytes": 5000, "min_share": 0.1}
    loop, _, _ = _loop(radio=radio)
    assert loop.view().downlink == Downlink(2e6, 5000, 0.1) and loop.view().band_free == 1.0


def test_the_view_carries_each_agents_latest_power_and_memory_telemetry() -> None:
    loop, _, _ = _loop()
    row = TelemetryRow("e1", 1, 0.0, 7.5, "jetson-ina3221", None, "unavailable", 3 * 2**30, 8 * 2**30, "sysfs",
                       None, None, 2)  # fmt: skip
    loop.registry.telemetry("e1", [dataclasses.replace(row, power_w=99.0), row])  # the newest sample counts
    e1, e2 = loop.view().agent("e1"), loop.view().agent("e2")
    assert (e1.power_w, e1.mem_free_bytes, e1.mem_total_bytes, e1.queue_depth) == (7.5, 5 * 2**30, 8 * 2**30, 2)
    assert (e2.power_w, e2.mem_free_bytes) == (None, None)  # no telemetry from it: not known


class FakeEvaluator:
    """Logits that give class 2 probability 0.5 and the other 9 classes 0.5 / 9 each."""

    def run(self, images: np.ndarray) -> tuple[np.ndarray, None]:
        assert images.shape == (1, 1, 8, 8)
        logits = np.zeros((1, 10))
        logits[0, 2] = np.log(9.0)
        return logits, None


def _routed(image: np.ndarray) -> Routed:
    return Routed(
        request_id="r", model="c", agent="e1", image=image, steps=8, steps_source="policy", latency_s=0.2,
        agent_time_s=0.1, queue_time_s=0.0, compute_time_s=0.1, energy_j=None, energy_source="unavailable",
        attempts=1, loaded_model=False,
    )  # fmt: skip


def _rewards(store: FakeStore) -> list[tuple[float | None, dict]]:
    return [(row[3], json.loads(row[4])) for table, row in store.rows if table == "rewards"]


def test_a_scored_request_gets_its_utility_without_an_energy_term_when_energy_is_unavailable() -> None:
    loop, _, store = _loop(w_latency=0.5)
    loop.evaluator = FakeEvaluator()
    routed = asyncio.run(loop.score(SubmitSpec("r", "c", 2, quality_floor=0.6), _routed(np.zeros((1, 8, 8)))))
    assert routed.quality == pytest.approx(0.5)
    [(reward, detail)] = _rewards(store)
    assert reward == pytest.approx(0.5 - 0.5 * 0.2)
    assert detail["energy_available"] is False and detail["energy_term"] is None and detail["floor_met"] is False
    assert loop.measured.snapshot()[("e1", "c", 8)].quality == pytest.approx(0.5)


def test_an_image_the_evaluator_cannot_take_gets_a_reward_row_that_says_why() -> None:
    loop, _, store = _loop()
    loop.evaluator = FakeEvaluator()
    routed = asyncio.run(loop.score(SubmitSpec("r", "c", 2), _routed(np.zeros((1, 4, 4)))))
    assert routed.quality is None
    [(reward, detail)] = _rewards(store)
    assert reward is None and "AssertionError" in detail["quality_unavailable"]
    assert loop.measured.snapshot()[("e1", "c", 8)].latency_s == pytest.approx(0.2)  # latency still counts


class BaselineCaching:
    """A caching policy whose learner trained on utility less a per-request baseline (as ``LearnedCaching``)."""

    name = "baseline-caching"

    def __init__(self) -> None:
        self.asked: list[tuple] = []
        self.learned: list[float] = []

    def reward_baseline(self, model: str, w_latency: float, w_energy: float, snr_db, deadline_s: float) -> float:
        self.asked.append((model, w_latency, w_energy, snr_db, deadline_s))
        return 0.1 * len(self.asked)

    def learn(self, frame_reward: float) -> None:
        self.learned.append(frame_reward)

    def plan(self, view) -> dict:
        return {}


def test_a_tuned_caching_learner_gets_the_frames_utility_less_its_baselines() -> None:
    loop, _, store = _loop(w_latency=0.5)
    loop.config = loop.config.model_copy(update={"fine_tune": True})  # as a learned pair would set it
    loop.evaluator = FakeEvaluator()
    loop.caching = caching = BaselineCaching()
    for deadline_s in (2.0, 3.0):
        asyncio.run(
            loop.score(SubmitSpec("r", "c", 2, w_latency=0.4, deadline_s=deadline_s), _routed(np.zeros((1, 8, 8))))
        )
    rewards = [reward for reward, _ in _rewards(store)]
    assert rewards == pytest.approx([0.5 - 0.4 * 0.2] * 2)  # the utility rows stay the utility
    assert caching.asked == [("c", 0.4, 0.01, None, 2.0), ("c", 0.4, 0.01, None, 3.0)]
    asyncio.run(loop.plan_frame())
    assert caching.learned == pytest.approx([np.mean([rewards[0] - 0.1, rewards[1] - 0.2])])


class LearningAllocation:
    name = "learning"

    def __init__(self) -> None:
        self.learned: list[tuple[str, float]] = []

    def learn(self, request_id: str, utility: float) -> bool:
        self.learned.append((request_id, utility))
        return True


def test_a_failed_request_is_scored_as_the_simulator_scores_it_and_the_learners_pay_for_it() -> None:
    loop, _, store = _loop(w_latency=0.5)
    loop.config = loop.config.model_copy(update={"fine_tune": True})
    loop.caching, loop.allocation = caching, allocation = BaselineCaching(), LearningAllocation()
    loop.fail(SubmitSpec("late", "c", 2, w_latency=0.4, deadline_s=3.0), "DEADLINE_EXCEEDED", 3.01)
    [(reward, detail)] = _rewards(store)
    assert reward == pytest.approx(-0.4 * 3.01) and detail["outcome"] == "DEADLINE_EXCEEDED"
    assert detail["quality"] == 0.0 and detail["request_id"] == "late"
    assert allocation.learned == [("late", pytest.approx(-0.4 * 3.01))]
    asyncio.run(loop.plan_frame())
    assert caching.learned == pytest.approx([-0.4 * 3.01 - 0.1])  # less the caching learner's baseline
