"""``edgetb bench`` end to end against a real in-process agent (simulated device, so energy and idle
power exist and are labelled ``modeled``), over both protocols and every scenario."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app

SCENARIOS = {
    "single-stream": [],
    "server": ["--rate", "150", "--max-in-flight", "4"],
    "offline": ["--max-in-flight", "4"],
}


def bench(address: str, out: Path, *args: str) -> tuple[int, str, dict | None]:
    """Run ``edgetb bench`` in-process; returns (exit code, output, bench.json or None)."""
    argv = ["bench", "--target", address, "--out", str(out), "--connect-timeout-s", "1", *args]
    result = CliRunner().invoke(app, argv, terminal_width=200)
    report = json.loads(out.read_text()) if out.exists() else None
    return result.exit_code, result.output, report


def tail_spreads(windows: list[dict]) -> tuple[float, float]:
    tail = windows[-3:]
    qps = [w["throughput_qps"] for w in tail]
    p50 = [w["latency_s_p50"] for w in tail]
    return max(qps) / min(qps) - 1, max(p50) / min(p50) - 1


@pytest.mark.parametrize("protocol", ["edgeagent", "kserve"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_bench_scenario_against_an_agent(
    harness_agent, sim_idle_power_w, tmp_path, scenario: str, protocol: str
) -> None:
    code, output, r = bench(
        harness_agent.address,
        tmp_path / "bench.json",
        *("--model", "tiny", "--steps", "3", "--batch", "2", "--scenario", scenario, "--protocol", protocol),
        *("--min-duration-s", "0.4", "--min-queries", "20", "--idle-s", "0.3", "--seed", "11"),
        *SCENARIOS[scenario],
    )
    assert code == 0, output
    assert "edgetb bench" in output and "valid" in output
    assert (r["scenario"], r["protocol"], r["model"], r["steps"], r["batch"], r["seed"]) == (
        scenario,
        protocol,
        "tiny",
        3,
        2,
        11,
    )
    q = r["queries"]
    assert q["issued"] >= 20 and q["completed"] > 0
    assert q["issued"] == q["completed"] + q["failed_total"] + q["dropped"]
    assert q["failed"] == {} and q["images_completed"] == 2 * q["completed"]
    assert r["duration_s"] >= 0.4
    thr = r["throughput"]
    assert thr["queries_per_s"] == pytest.approx(q["completed"] / r["duration_s"])
    assert thr["images_per_s"] == pytest.approx(2 * thr["queries_per_s"])
    lat = r["latency_s"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    # Server-side times come from the agent over both protocols; compute is part of the latency.
    assert 0 < r["server_time_s"]["compute_p50"] < lat["p50"]
    assert r["server_time_s"]["queue_p50"] is not None
    # Energy from every response, labelled by the simulated device.
    assert r["energy_source"] == "modeled" and r["energy_j_per_image"] > 0
    if protocol == "edgeagent":
        assert r["idle"]["source"] == "modeled" and r["idle"]["samples"] >= 10
        # Modeled power follows the agent's busy fraction over the last 10 s: earlier runs raise it.
        assert sim_idle_power_w <= r["idle"]["power_w"] <= 15.0
        above = r["energy_above_idle_j_per_image"]
        assert above is not None and above < r["energy_j_per_image"]
    else:
        assert r["idle"]["power_w"] is None and r["idle"]["source"] == "unavailable"
        assert "KServe" in r["idle"]["reason"]
        assert r["energy_above_idle_j_per_image"] is None
    # Windows cover the completed queries; the verdict agrees with the reported windows.
    assert len(r["windows"]) == 5 and sum(w["queries"] for w in r["windows"]) == q["completed"]
    throughput_spread, latency_spread = tail_spreads(r["windows"])
    stable = throughput_spread <= 0.1 + 1e-9 and latency_spread <= 0.1 + 1e-9
    assert r["validity"]["checks"]["stable"] == stable
    assert r["validity"]["valid"] == (stable and r["validity"]["checks"]["minimums_met"])
    assert r["validity"]["throughput_spread"] == pytest.approx(throughput_spread)
    assert r["metric"]["value"] is not None
    assert r["software"]["edgetb"] and r["software"]["grpcio"]
    if scenario == "server":
        assert r["settings"]["rate_qps"] == 150 and r["latency_measured_from"] == "scheduled arrival"
        assert isinstance(q["late"], int) and 0 <= r["issue_delay_s"]["p50"] <= r["issue_delay_s"]["p99"]
    else:
        assert r["latency_measured_from"] == "issue" and q["late"] is None and r["issue_delay_s"] is None


def test_bench_loads_a_cold_model_and_unloads_it_after(harness_agent, tmp_path) -> None:
    agent = harness_agent.agent
    assert not agent.is_loaded("tiny-cold")
    code, output, r = bench(
        harness_agent.address,
        tmp_path / "b.json",
        *("--model", "tiny-cold", "--steps", "2", "--min-duration-s", "0.1", "--min-queries", "5", "--idle-s", "0"),
    )
    assert code == 0, output
    assert r["server"]["loaded_by_harness"] and r["server"]["num_classes"] == 10
    assert r["idle"]["source"] == "unavailable" and "--idle-s 0" in r["idle"]["reason"]
    assert not agent.is_loaded("tiny-cold")


def test_failing_queries_are_counted_by_status_code(harness_agent, tmp_path) -> None:
    # T = 50 for the tiny model: 60 steps is INVALID_ARGUMENT for every query.
    code, output, r = bench(
        harness_agent.address,
        tmp_path / "b.json",
        *("--model", "tiny", "--steps", "60", "--warmup", "0", "--min-duration-s", "0.1", "--min-queries", "5"),
        *("--idle-s", "0"),
    )
    assert code == 0, output
    q = r["queries"]
    assert q["completed"] == 0 and q["failed"] == {"INVALID_ARGUMENT": q["issued"]} and q["issued"] >= 5
    assert "steps" in r["errors"][0]
    assert r["energy_j_per_image"] is None and r["energy_note"] == "no completed queries"
    assert not r["validity"]["valid"] and "queries failed" in r["validity"]["reason"]


def test_idle_baseline_reads_the_agents_telemetry(harness_repo, sim_profile, sim_idle_power_w) -> None:
    from node_agent.config import AgentConfig
    from node_agent.server import running_agent
    from orchestrator.harness.targets import EdgeAgentTarget

    config = AgentConfig(
        name="idle-agent",
        listen="127.0.0.1:0",
        models=harness_repo,
        device="simulated",
        sim_profile=sim_profile,
        telemetry_hz=50,
    )
    with running_agent(config) as server, EdgeAgentTarget(server.address, timeout_s=5) as target:
        target.open("tiny")
        idle = target.idle_baseline(0.4)
    # A fresh agent that never computed: exactly the profile's idle power, from ~0.4 s of 50 Hz samples.
    assert idle.power_w == pytest.approx(sim_idle_power_w) and idle.source == "modeled" and idle.reason == ""
    assert 15 <= idle.samples <= 21 and 0.3 <= idle.duration_s <= 0.4 + 1e-6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("protocol", ["edgeagent", "kserve"])
def test_bad_target_and_bad_model_fail_clearly(harness_agent, tmp_path, protocol: str) -> None:
    common = ("--steps", "2", "--protocol", protocol, "--idle-s", "0")
    code, output, r = bench(f"127.0.0.1:{free_port()}", tmp_path / "a.json", "--model", "tiny", *common)
    assert code == 1 and "cannot connect to 127.0.0.1:" in output and r is None
    code, output, r = bench(harness_agent.address, tmp_path / "b.json", "--model", "no-such-model", *common)
    assert code == 1 and "no-such-model" in output and r is None
    assert ("repository" in output) if protocol == "edgeagent" else ("NOT_FOUND" in output)
    # Steps beyond the model's T: the warm-up query fails and says why.
    code, output, r = bench(harness_agent.address, tmp_path / "c.json", "--model", "tiny", "--steps", "99", *common[2:])
    assert code == 1 and "warm-up query failed: INVALID_ARGUMENT" in output and r is None


def test_bad_options_are_rejected(harness_agent, tmp_path) -> None:
    base = ("--model", "tiny", "--steps", "2")
    code, output, _ = bench(harness_agent.address, tmp_path / "a.json", *base, "--scenario", "server")
    assert code == 2 and "rate" in output
    code, output, _ = bench(harness_agent.address, tmp_path / "a.json", *base, "--protocol", "http")
    assert code == 2 and "protocol" in output
    code, output, _ = bench(harness_agent.address, tmp_path / "a.json", *base, "--scenario", "burst")
    assert code == 2 and "scenario" in output
