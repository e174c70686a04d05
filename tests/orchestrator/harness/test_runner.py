"""The runner against a fake in-process target: concurrency per scenario, accounting, determinism,
and the energy figures of the report."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from orchestrator.harness.report import build_report, energy_summary
from orchestrator.harness.runner import DROPPED, OK, BenchConfig, QueryRecord, run_queries
from orchestrator.harness.scenarios import Limits, query_inputs
from orchestrator.harness.targets import BenchError, IdleBaseline, Reply, Target, TargetFacts


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return f"fake {self._code.name}"


class FakeTarget(Target):
    """Sleeps ``delay_s`` per query; tracks concurrency; every ``fail_every``-th call fails."""

    protocol = "fake"

    def __init__(self, delay_s: float = 0.005, fail_every: int = 0, energy: bool = True) -> None:
        super().__init__("fake:0", timeout_s=5.0)
        self.delay_s, self.fail_every, self.energy = delay_s, fail_every, energy
        self.lock = threading.Lock()
        self.active = self.max_active = 0
        self.calls: list[tuple[tuple[int, ...], int]] = []

    def open(self, model: str) -> TargetFacts:
        return TargetFacts("fake", "0", None, 10, False)

    def infer(self, labels: list[int], seed: int, steps: int) -> Reply:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.calls.append((tuple(labels), seed))
            n = len(self.calls)
        try:
            time.sleep(self.delay_s)
            if self.fail_every and n % self.fail_every == 0:
                raise FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED)
            return Reply(len(labels), 0.0, self.delay_s, 0.2 * len(labels) if self.energy else None, "modeled")
        finally:
            with self.lock:
                self.active -= 1

    def idle_baseline(self, idle_s: float) -> IdleBaseline:
        return IdleBaseline(None, "unavailable", 0, 0.0, "fake")

    def close(self) -> None:
        pass


def config(scenario: str, **kw) -> BenchConfig:
    defaults = dict(model="m", steps=3, warmup_queries=0, limits=Limits(0.2, 10, 5.0, 10_000), max_in_flight=4)
    return BenchConfig(scenario=scenario, **{**defaults, **kw})


def accounted(records: list[QueryRecord]) -> None:
    """Every issued query appears once, numbered 0..n-1."""
    assert sorted(r.index for r in records) == list(range(len(records)))


def test_single_stream_issues_one_at_a_time_until_both_minimums() -> None:
    target = FakeTarget(delay_s=0.002)
    run = run_queries(config("single-stream", limits=Limits(0.1, 40, 5.0, 10_000)), target, 10)
    assert target.max_active == 1
    assert len(run.records) >= 40 and run.duration_s >= 0.1 and run.minimums_met
    accounted(run.records)
    # The inputs are those of query i for the run's seed: reproducible whatever the timing.
    expected = [query_inputs(0, i, 1, 10) for i in range(3)]
    assert target.calls[:3] == [(tuple(labels), seed) for labels, seed in expected]


def test_offline_fills_the_in_flight_window() -> None:
    target = FakeTarget(delay_s=0.02)
    run = run_queries(config("offline", max_in_flight=4), target, 10)
    assert target.max_active == 4
    assert all(r.status == OK for r in run.records)
    accounted(run.records)


def test_server_drops_beyond_the_bound_and_accounts_for_everything() -> None:
    # 400 queries/s offered, each takes 20 ms, at most 2 outstanding: about 40 % gets through.
    target = FakeTarget(delay_s=0.02, fail_every=5)
    run = run_queries(
        config("server", rate_qps=400.0, max_in_flight=2, limits=Limits(0.3, 10, 5.0, 10_000)), target, 10
    )
    statuses = [r.status for r in run.records]
    dropped, ok, failed = statuses.count(DROPPED), statuses.count(OK), statuses.count("RESOURCE_EXHAUSTED")
    assert target.max_active <= 2
    assert dropped > 0 and ok > 0 and failed > 0
    assert dropped + ok + failed == len(run.records) == len(target.calls) + dropped
    accounted(run.records)
    # Arrivals follow the seeded schedule: the same seed gives the same scheduled times.
    again = run_queries(
        config("server", rate_qps=400.0, max_in_flight=2, limits=Limits(0.3, 10, 5.0, 10_000)),
        FakeTarget(delay_s=0.02),
        10,
    )
    first = sorted(r.scheduled_s for r in run.records)
    assert sorted(r.scheduled_s for r in again.records)[:50] == first[:50]
    report = build_report(
        config("server", rate_qps=400.0), "fake:0", "fake", target.open("m"), target.idle_baseline(0), run, 10, "test"
    )
    q = report["queries"]
    assert q["issued"] == q["completed"] + q["failed_total"] + q["dropped"]
    assert q["failed"] == {"RESOURCE_EXHAUSTED": failed} and q["dropped"] == dropped
    assert not report["validity"]["valid"] and "dropped" in report["validity"]["reason"]
    assert report["errors"] == ["RESOURCE_EXHAUSTED: fake RESOURCE_EXHAUSTED"]


def test_hard_cap_stops_a_run_and_makes_it_invalid() -> None:
    target = FakeTarget(delay_s=0.001)
    run = run_queries(config("single-stream", limits=Limits(10.0, 5, 5.0, 25)), target, 10)
    assert len(run.records) == 25 and not run.minimums_met


def test_failing_warm_up_is_a_clear_error() -> None:
    target = FakeTarget(fail_every=1)
    with pytest.raises(BenchError, match="warm-up query failed: RESOURCE_EXHAUSTED"):
        run_queries(config("single-stream", warmup_queries=1), target, 10)


def record(i: int, energy_j: float | None, compute_s: float | None, images: int = 2) -> QueryRecord:
    return QueryRecord(i, 0.0, 0.0, 0.1, OK, Reply(images, 0.0, compute_s, energy_j, "modeled"))


def test_energy_per_image_and_above_idle() -> None:
    ok = [record(0, 3.0, 0.2), record(1, 5.0, 0.4)]
    idle = IdleBaseline(5.0, "modeled", 10, 1.0)
    got = energy_summary(ok, idle)
    assert got["energy_j_per_image"] == pytest.approx(8.0 / 4)
    assert got["energy_source"] == "modeled"
    assert got["energy_above_idle_j_per_image"] == pytest.approx((8.0 - 5.0 * 0.6) / 4)


def test_energy_is_never_invented() -> None:
    idle = IdleBaseline(5.0, "modeled", 10, 1.0)
    partial = energy_summary([record(0, 3.0, 0.2), record(1, None, 0.4)], idle)
    assert partial["energy_j_per_image"] is None and partial["energy_source"] == "unavailable"
    assert partial["energy_note"] == "1 of 2 responses carried no energy figure"
    assert partial["energy_above_idle_j_per_image"] is None
    no_idle = energy_summary([record(0, 3.0, 0.2)], IdleBaseline(None, "unavailable", 0, 0.0, "KServe"))
    assert no_idle["energy_j_per_image"] == pytest.approx(1.5)
    assert no_idle["energy_above_idle_j_per_image"] is None and "KServe" in no_idle["energy_above_idle_note"]
    no_compute = energy_summary([record(0, 3.0, None)], idle)
    assert no_compute["energy_above_idle_j_per_image"] is None
    assert energy_summary([], idle)["energy_note"] == "no completed queries"
