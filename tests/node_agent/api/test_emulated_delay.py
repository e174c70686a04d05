"""The emulated WAN delay of a `cloud` agent: reported, labelled, seeded, bounded, and deadline-aware.

Two module-scoped agents serve the tiny model: one with an emulated delay of 30 ms +- 5 ms (seed 7)
and one with the defaults, which must behave as before (no delay, nothing reported).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from typer.testing import CliRunner

from node_agent.cli import app
from node_agent.config import AgentConfig, ConfigError
from node_agent.emulation import EmulatedDelay
from node_agent.server import AgentServer, running_agent
from protos import edge_agent_pb2 as pb
from protos import edge_agent_pb2_grpc, kserve_v2_pb2, kserve_v2_pb2_grpc

MEAN_MS, JITTER_MS, SEED = 30.0, 5.0, 7
LOW_S, HIGH_S = (MEAN_MS - 3 * JITTER_MS) / 1e3, (MEAN_MS + 3 * JITTER_MS) / 1e3


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory, write_model, onnx_kit) -> Path:
    root = tmp_path_factory.mktemp("models")
    doc = onnx_kit.spec_doc("tiny", image=(1, 4, 4), steps_T=50)
    doc["defaults"].update(steps=5, max_batch=16)
    write_model(root, "tiny", doc=doc)
    return root


def _config(repo: Path, profile: Path, name: str, **delay: float) -> AgentConfig:
    return AgentConfig(
        name=name,
        listen="127.0.0.1:0",
        models=repo,
        device="simulated",
        sim_profile=profile,
        telemetry_hz=10,
        preload=("tiny",),
        **delay,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def sim_profile(tmp_path_factory, sim_profile_toml) -> Path:
    path = tmp_path_factory.mktemp("sim") / "sim.toml"
    path.write_text(sim_profile_toml())
    return path


@pytest.fixture(scope="module")
def cloud_agent(tiny_repo, sim_profile) -> Iterator[AgentServer]:
    config = _config(
        tiny_repo,
        sim_profile,
        "cloud",
        emulated_delay_ms=MEAN_MS,
        emulated_delay_jitter_ms=JITTER_MS,
        emulated_delay_seed=SEED,
    )
    with running_agent(config) as server:
        yield server


@pytest.fixture(scope="module")
def plain_agent(tiny_repo, sim_profile) -> Iterator[AgentServer]:
    with running_agent(_config(tiny_repo, sim_profile, "plain")) as server:
        yield server


@pytest.fixture(scope="module")
def cloud_channel(cloud_agent) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(cloud_agent.address) as ch:
        yield ch


@pytest.fixture(scope="module")
def plain_channel(plain_agent) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(plain_agent.address) as ch:
        yield ch


def generate(channel: grpc.Channel, timeout_s: float = 30.0) -> tuple[pb.GenerateResponse, float]:
    """One Generate; returns the response and the latency the client measured, in seconds."""
    stub = edge_agent_pb2_grpc.EdgeAgentStub(channel)
    start_s = time.perf_counter()
    response = stub.Generate(pb.GenerateRequest(model="tiny", labels=[1, 2], seed=3), timeout=timeout_s)
    return response, time.perf_counter() - start_s


def infer_request(**params: int) -> kserve_v2_pb2.ModelInferRequest:
    request = kserve_v2_pb2.ModelInferRequest(model_name="tiny", id="r1")
    request.inputs.add(name="LABEL", datatype="INT32", shape=[2])
    request.raw_input_contents.append(np.asarray([4, 5], dtype="<i4").tobytes())
    for key, value in params.items():
        request.parameters[key].int64_param = value
    return request


# --- the delay model on its own -----------------------------------------------------------------


def test_draws_are_seeded_bounded_and_have_the_stated_distribution() -> None:
    a, b = EmulatedDelay(MEAN_MS, JITTER_MS, SEED), EmulatedDelay(MEAN_MS, JITTER_MS, SEED)
    draws = [a.draw_s() for _ in range(20_000)]
    assert draws == [b.draw_s() for _ in range(20_000)]  # same seed, same sequence
    other = EmulatedDelay(MEAN_MS, JITTER_MS, SEED + 1)
    assert draws[:100] != [other.draw_s() for _ in range(100)]
    assert min(draws) >= LOW_S and max(draws) <= HIGH_S
    # Normal truncated at +-3 sd: mean unchanged, sd shrinks by sqrt(1 - 6 phi(3) / (2 Phi(3) - 1)).
    shrink = math.sqrt(1 - 6 * math.exp(-4.5) / math.sqrt(2 * math.pi) / (2 * statistics.NormalDist().cdf(3) - 1))
    assert statistics.fmean(draws) * 1e3 == pytest.approx(MEAN_MS, abs=0.15)
    assert statistics.stdev(draws) * 1e3 == pytest.approx(JITTER_MS * shrink, rel=0.03)
    assert a.label == f"emulated-wan-rtt:truncnormal(mean_ms=30,jitter_ms=5,range_ms=15..45,seed={SEED})"


def test_delay_model_edge_cases() -> None:
    none = EmulatedDelay()
    assert not none.enabled and none.label == "" and none.draw_s() == 0.0
    constant = EmulatedDelay(80.0, 0.0, 1)
    assert constant.label == "emulated-wan-rtt:constant(mean_ms=80)"
    assert {constant.draw_s() for _ in range(10)} == {0.08}
    # Jitter larger than the mean: cut at 0, never negative.
    wide = EmulatedDelay(2.0, 10.0, 0)
    draws = [wide.draw_s() for _ in range(5_000)]
    assert min(draws) >= 0.0 and max(draws) <= 0.032 + 1e-12
    assert "range_ms=0..32" in wide.label


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"emulated_delay_ms": -1.0}, "emulated_delay_ms"),
        ({"emulated_delay_ms": float("nan")}, "emulated_delay_ms"),
        ({"emulated_delay_ms": 10_001.0}, "emulated_delay_ms"),
        ({"emulated_delay_jitter_ms": -0.5}, "emulated_delay_jitter_ms"),
        ({"emulated_delay_jitter_ms": float("inf")}, "emulated_delay_jitter_ms"),
        ({"emulated_delay_ms": 9_000.0, "emulated_delay_jitter_ms": 400.0}, "emulated_delay_jitter_ms"),
        ({"emulated_delay_seed": -1}, "emulated_delay_seed"),
        ({"emulated_delay_ms": "80"}, "emulated_delay_ms"),
    ],
)
def test_invalid_delay_settings_name_the_setting(changes, field) -> None:
    with pytest.raises(ConfigError, match=field):
        AgentConfig(**changes)


def test_serve_flags_reach_the_config(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--emulated-delay-ms", "-5"])
    assert result.exit_code == 2 and "emulated_delay_ms" in result.output
    result = CliRunner().invoke(app, ["serve", "--emulated-delay-ms", "9000", "--emulated-delay-jitter-ms", "500"])
    assert result.exit_code == 2 and "emulated_delay_jitter_ms" in result.output
    path = tmp_path / "agent.toml"
    path.write_text("[agent]\nemulated_delay_ms = 80\nemulated_delay_jitter_ms = 10\nemulated_delay_seed = 3\n")
    config = AgentConfig.from_toml(path, emulated_delay_jitter_ms=2.5)
    assert (config.emulated_delay_ms, config.emulated_delay_jitter_ms, config.emulated_delay_seed) == (80, 2.5, 3)


# --- an agent with the delay --------------------------------------------------------------------


def test_generate_reports_the_delay_inside_its_latency(cloud_channel) -> None:
    for _ in range(5):
        response, client_latency_s = generate(cloud_channel)
        m = response.measurement
        assert LOW_S <= m.emulated_delay_s <= HIGH_S
        assert m.emulated_delay_model.startswith("emulated-wan-rtt:truncnormal(mean_ms=30,jitter_ms=5,")
        assert client_latency_s >= m.emulated_delay_s
        assert m.total_time_s >= m.emulated_delay_s + m.queue_time_s + m.compute_time_s
        assert client_latency_s >= m.total_time_s
        # The measured parts stay measured: energy covers the compute window only.
        assert m.energy_source == "modeled" and len(m.step_times_s) == 5


def test_agent_delays_follow_the_seeded_sequence(cloud_channel) -> None:
    reported = [generate(cloud_channel)[0].measurement.emulated_delay_s for _ in range(6)]
    reference = EmulatedDelay(MEAN_MS, JITTER_MS, SEED)
    expected = [reference.draw_s() for _ in range(1_000)]
    # Other tests of this module may have drawn before; the agent's draws continue the sequence.
    start = expected.index(reported[0])
    assert reported == expected[start : start + len(reported)]


def test_kserve_reports_the_delay(cloud_channel) -> None:
    kserve = kserve_v2_pb2_grpc.GRPCInferenceServiceStub(cloud_channel)
    start_s = time.perf_counter()
    response = kserve.ModelInfer(infer_request(steps=4, seed=1), timeout=30)
    client_latency_s = time.perf_counter() - start_s
    params = response.parameters
    delay_s = params["emulated_delay_s"].double_param
    assert LOW_S <= delay_s <= HIGH_S and client_latency_s >= delay_s
    assert params["emulated_delay_model"].string_param.startswith("emulated-wan-rtt:truncnormal(")
    assert params["total_time_s"].double_param >= delay_s + params["compute_time_s"].double_param


def test_info_shows_the_emulation(cloud_channel) -> None:
    info = edge_agent_pb2_grpc.EdgeAgentStub(cloud_channel).GetInfo(pb.GetInfoRequest(), timeout=5)
    assert info.emulated_delay_mean_s == pytest.approx(0.030)
    assert info.emulated_delay_jitter_s == pytest.approx(0.005)
    assert info.emulated_delay_model.startswith("emulated-wan-rtt:truncnormal(mean_ms=30,jitter_ms=5,")


def test_delays_wait_on_the_event_loop_not_on_the_worker(cloud_channel) -> None:
    """Eight concurrent requests to one model (one worker thread) overlap their delays."""
    stub = edge_agent_pb2_grpc.EdgeAgentStub(cloud_channel)
    request = pb.GenerateRequest(model="tiny", labels=[0], seed=1)
    start_s = time.perf_counter()
    futures = [stub.Generate.future(request, timeout=30) for _ in range(8)]
    delays_s = [f.result().measurement.emulated_delay_s for f in futures]
    wall_s = time.perf_counter() - start_s
    assert wall_s < sum(delays_s)  # a worker sleeping through each delay would need at least the sum


def test_deadline_shorter_than_the_delay_is_exceeded(cloud_channel) -> None:
    # KServe's timeout parameter is a deadline only the agent knows: DEADLINE_EXCEEDED comes from it.
    kserve = kserve_v2_pb2_grpc.GRPCInferenceServiceStub(cloud_channel)
    with pytest.raises(grpc.RpcError) as info:
        kserve.ModelInfer(infer_request(timeout=int(LOW_S * 1e6 / 2)), timeout=30)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "emulated WAN delay" in info.value.details()
    # A gRPC deadline shorter than any possible delay, over the EdgeAgent API.
    with pytest.raises(grpc.RpcError) as info:
        generate(cloud_channel, timeout_s=LOW_S / 2)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The agent keeps serving.
    assert generate(cloud_channel)[0].measurement.emulated_delay_s >= LOW_S


# --- an agent without it (the default) ----------------------------------------------------------


def test_default_agent_adds_and_reports_no_delay(plain_channel) -> None:
    response, _ = generate(plain_channel)
    assert response.measurement.emulated_delay_s == 0.0 and response.measurement.emulated_delay_model == ""
    kserve = kserve_v2_pb2_grpc.GRPCInferenceServiceStub(plain_channel)
    params = kserve.ModelInfer(infer_request(steps=2), timeout=30).parameters
    assert "emulated_delay_s" not in params and "emulated_delay_model" not in params
    assert "total_time_s" in params
    info = edge_agent_pb2_grpc.EdgeAgentStub(plain_channel).GetInfo(pb.GetInfoRequest(), timeout=5)
    assert (info.emulated_delay_mean_s, info.emulated_delay_jitter_s, info.emulated_delay_model) == (0.0, 0.0, "")
    config = AgentConfig()
    assert (config.emulated_delay_ms, config.emulated_delay_jitter_ms) == (0.0, 0.0)
