"""The simulator backend: draws from profiles, the live policies unchanged, reproducible runs."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from orchestrator.config import PolicyConfig
from orchestrator.fidelity import compare, gap, run_fidelity
from orchestrator.live_demo import summarize
from orchestrator.sim.cluster import CLOUD, SimSettings, simulate
from orchestrator.sim.sampler import ModelSampler, beta_draw, interpolate
from orchestrator.workload import Workload
from profiles.scenario import load_scenario

MODELS = ("digits-mlp-s", "digits-resmlp-l", "digits-ldm")
PER_STEP_S = {"digits-mlp-s": 0.0005, "digits-resmlp-l": 0.002, "digits-ldm": 0.001}


@pytest.fixture(scope="module")
def samplers(synthetic_profile) -> dict[str, ModelSampler]:
    return {m: ModelSampler(synthetic_profile(m, "dev", per_step_s=PER_STEP_S[m]), power_w=10.0) for m in MODELS}


@pytest.fixture(scope="module")
def requests():
    return Workload.from_scenario(load_scenario("t2drl")).requests(40)


def policy(name: str) -> PolicyConfig:
    caching, _, allocation = name.partition("+")
    return PolicyConfig(caching=caching, allocation=allocation, scenario="t2drl", cloud_agent=CLOUD)


def test_interpolate_between_and_beyond_points() -> None:
    xs, ys = [1.0, 2.0, 4.0], [10.0, 20.0, 30.0]
    assert interpolate(xs, ys, 3.0) == pytest.approx(25.0)
    assert interpolate(xs, ys, 8.0) == pytest.approx(50.0)  # slope of the last two points
    assert interpolate(xs, ys, 0.0) == pytest.approx(0.0)
    assert interpolate(xs, ys, 8.0, extrapolate=False) == 30.0
    with pytest.raises(ValueError):
        interpolate([], [], 1.0)


def test_sampler_reproduces_the_profile(synthetic_profile) -> None:
    sampler = ModelSampler(synthetic_profile("m", "dev", per_step_s=0.001), power_w=20.0)
    assert sampler.compute_stats(8) == pytest.approx((0.008, 8e-5))
    assert sampler.compute_stats(12)[0] == pytest.approx(0.012)  # between 8 and 16
    assert sampler.compute_stats(64)[0] == pytest.approx(0.064)  # extrapolated
    assert sampler.overhead_s(8) == pytest.approx(0.002)
    rng = np.random.default_rng(0)
    draws = [sampler.draw(8, rng) for _ in range(4000)]
    assert np.mean([d.compute_s for d in draws]) == pytest.approx(0.008, rel=0.01)
    assert np.mean([d.quality for d in draws]) == pytest.approx(0.95, abs=0.01)
    assert np.std([d.quality for d in draws]) == pytest.approx(0.1, abs=0.01)
    assert all(0.0 <= d.quality <= 1.0 for d in draws)
    assert all(d.energy_j == pytest.approx(20.0 * d.compute_s) and d.energy_source == "modeled" for d in draws)
    no_power = ModelSampler(synthetic_profile("m", "dev"), power_w=None).draw(8, rng)
    assert no_power.energy_j is None and no_power.energy_source == "unavailable"
    measured = ModelSampler(synthetic_profile("m", "dev", energy_w=3.0), power_w=99.0).draw(8, rng)
    assert measured.energy_j == pytest.approx(3.0 * 0.0005 * 8)  # the profile's energy fit wins


def test_beta_draw_keeps_mean_and_bounds() -> None:
    rng = np.random.default_rng(1)
    values = np.array([beta_draw(rng, 0.8, 0.3) for _ in range(5000)])
    assert values.mean() == pytest.approx(0.8, abs=0.01) and values.min() >= 0 and values.max() <= 1
    assert beta_draw(rng, 0.5, 0.0) == 0.5


def test_no_cache_sends_everything_to_the_cloud(samplers, requests) -> None:
    results = simulate(requests, samplers, policy("no-cache+fixed-steps"), SimSettings(cloud_delay_ms=200.0))
    assert len(results) == len(requests) and all(r.outcome == "ok" and r.agent == CLOUD for r in results)
    assert not any(r.hit for r in results)
    assert min(r.latency_s for r in results) >= 0.170  # 200 ms - 3 sd of 10 ms
    assert all(r.steps == 8 for r in results)


def test_most_popular_caches_after_the_first_frame(samplers, requests) -> None:
    settings = SimSettings(cloud_delay_ms=200.0)
    results = simulate(requests, samplers, policy("most-popular+fixed-steps"), settings)
    frame_s = 10.0
    before = [r for r, q in zip(results, requests, strict=True) if q.arrival_s < frame_s]
    assert before and all(r.agent == CLOUD for r in before)  # nothing is cached before the first plan
    hits = [r for r in results if r.hit]
    assert hits and all(r.agent.startswith("edge-") and r.latency_s < 0.1 for r in hits)
    # aligning the policy clock earlier moves the first plan before the workload's start: more hits
    early = simulate(requests, samplers, policy("most-popular+fixed-steps"),
                     SimSettings(cloud_delay_ms=200.0, policy_clock_s=9.5))  # fmt: skip
    assert sum(r.hit for r in early) > len(hits)
    assert summarize(early)["mean_latency_s"] < summarize(results)["mean_latency_s"]


def test_runs_are_reproducible_per_seed(samplers, requests) -> None:
    pol = policy("lru+fixed-steps")
    a = simulate(requests, samplers, pol, SimSettings(seed=3))
    assert a == simulate(requests, samplers, pol, SimSettings(seed=3))
    assert [r.latency_s for r in a] != [r.latency_s for r in simulate(requests, samplers, pol, SimSettings(seed=4))]


def test_greedy_latency_reads_the_simulated_measurements(samplers, requests) -> None:
    results = simulate(requests, samplers, policy("most-popular+greedy-latency"), SimSettings())
    assert all(r.outcome == "ok" for r in results)
    assert {r.steps for r in results} <= {4, 8, 16, 32}


def test_missing_profile_is_refused(samplers, requests) -> None:
    with pytest.raises(ValueError, match="no profile for digits-ldm"):
        simulate(requests, {m: s for m, s in samplers.items() if m != "digits-ldm"}, policy("lru+fixed-steps"))


def test_gap_and_goal() -> None:
    assert gap(0.2, 0.21) == pytest.approx(0.05)
    assert gap(None, 1.0) is None and gap(0.0, 1.0) is None
    verdict = compare({"mean_latency_s": 0.2, "energy_j_per_request": None, "mean_quality": 0.9},
                      {"mean_latency_s": 0.25, "energy_j_per_request": 0.1, "mean_quality": 0.91})  # fmt: skip
    assert verdict["gap"]["energy_j_per_request"] is None  # unavailable live: no gap, not 0
    assert verdict["within_goal"] == {"mean_latency_s": False, "mean_quality": True}
    assert verdict["all_within_goal"] is False


def test_run_fidelity_sim_only(tmp_path: Path, synthetic_profile) -> None:
    models = tmp_path / "models"
    for m in MODELS:
        synthetic_profile(m, "dev").write(models / m / "profile-dev.toml")
    report = run_fidelity(tmp_path / "out", device="dev", slots=20, live=False, models_dir=models)
    written = json.loads((tmp_path / "out" / "fidelity.json").read_text())
    assert written["policies"].keys() == report["policies"].keys() == {"most-popular+fixed-steps"}
    sim = written["policies"]["most-popular+fixed-steps"]["sim"]
    assert sim["requests"] == report["requests"] > 0 and "live" not in written["policies"]["most-popular+fixed-steps"]


def test_estimate_scales_by_shipped_device_throughput(tmp_path: Path, synthetic_profile) -> None:
    from orchestrator.sim.estimate import estimate_profile, power_under_load_w
    from profiles.devices import load_device

    synthetic_profile("m", "x86-cpu", per_step_s=0.004).write(tmp_path / "m" / "profile-x86-cpu.toml")
    estimate, ratio = estimate_profile("m", "x86-cpu", "jetson-orin-nano", tmp_path)
    src, dst = load_device("x86-cpu"), load_device("jetson-orin-nano")
    assert ratio == pytest.approx(dst.fp32_gflops / src.fp32_gflops) and ratio > 1
    assert estimate.is_estimate and estimate.provenance.scaled_from == "x86-cpu"
    assert estimate.latency_fit(1).b == pytest.approx(0.004 / ratio)
    point = estimate.points_at(1)[3]
    assert point.energy_j == pytest.approx(power_under_load_w(dst) * point.compute_s)
    estimate.write(tmp_path / "m" / "profile-jetson-orin-nano.toml")
    with pytest.raises(ValueError, match="itself an estimate"):
        estimate_profile("m", "jetson-orin-nano", "rtx-4090", tmp_path)


def test_the_fidelity_simulator_takes_the_memory_use_the_live_edge_agents_reported(tmp_path: Path) -> None:
    from orchestrator.fidelity import live_mem_used_fraction

    path = tmp_path / "telemetry.sqlite"
    assert live_mem_used_fraction(path, "p") is None  # no live run
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(
            "CREATE TABLE telemetry (run_policy TEXT, agent TEXT, mem_used_bytes INTEGER, mem_total_bytes INTEGER)"
        )
        db.executemany("INSERT INTO telemetry VALUES (?, ?, ?, ?)", [
            ("p", "edge-1", 10, 100), ("p", "edge-2", 30, 100), ("p", "edge-2", None, 100),  # no figure: left out
            ("p", CLOUD, 90, 100), ("other", "edge-1", 80, 100),  # the cloud and other policies' runs: left out
        ])  # fmt: skip
        db.commit()
    assert live_mem_used_fraction(path, "p") == pytest.approx(0.2)
    assert live_mem_used_fraction(path, "absent") is None
