"""A simulated agent whose device profile is named: compute time and energy drawn from model profiles.

Agents run for real on a free loopback port. The repository holds ``timed`` (profile: 0.2 s +- 0.01 s
at 5 steps, 0.4 s +- 0.02 s at 10), ``fast`` (profile: 0 s, so the real compute always overruns it),
``powered`` (profile with energy), ``plain`` (no profile) and ``badprof`` (a malformed profile).
"""

from __future__ import annotations

import concurrent.futures
import re
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from node_agent.config import AgentConfig
from node_agent.server import AgentServer, running_agent
from node_agent.sim_timing import truncated_normal
from protos import edge_agent_pb2 as pb
from protos import edge_agent_pb2_grpc, kserve_v2_pb2, kserve_v2_pb2_grpc

DEVICE, MAX_POWER_W, SEED = "testdev", 20.0, 5
TIMED_LABEL = f"simulated-device:{DEVICE}:compute drawn from profile-{DEVICE}.toml (measured)"


@pytest.fixture(scope="module")
def repo(tmp_path_factory, write_model, onnx_kit, model_profile) -> Path:
    root = tmp_path_factory.mktemp("models")
    point = model_profile.point
    profiles = {
        "timed": [point(5, 0.2, 0.01), point(10, 0.4, 0.02)],
        "fast": [point(5, 0.0), point(10, 0.0)],
        "powered": [point(5, 0.1, energy_j=3.0), point(10, 0.2, energy_j=6.0)],
        "badprof": [point(5, 0.1), point(10, -0.5)],
        "plain": None,
    }
    for name, points in profiles.items():
        doc = onnx_kit.spec_doc(name, image=(1, 4, 4), steps_T=50)
        doc["defaults"].update(steps=5, max_batch=8)
        folder = write_model(root, name, doc=doc)
        if points is not None:
            (folder / f"profile-{DEVICE}.toml").write_text(model_profile.toml(name, points, device=DEVICE))
    return root


@pytest.fixture(scope="module")
def device_profile(tmp_path_factory, sim_profile_toml) -> Path:
    """A named device profile (``profiles/devices/*.toml`` layout: top-level name, ``[sim]`` table)."""
    path = tmp_path_factory.mktemp("dev") / f"{DEVICE}.toml"
    sim = sim_profile_toml(name="test device (simulated)", max_power_w=MAX_POWER_W).replace("[device]", "[sim]")
    path.write_text(f'schema = 1\nname = "{DEVICE}"\n\n{sim}')
    return path


def _serve(repo: Path, profile: Path, name: str, **settings: object) -> AgentConfig:
    values: dict[str, object] = {
        "name": name,
        "listen": "127.0.0.1:0",
        "models": repo,
        "device": "simulated",
        "sim_profile": profile,
        "telemetry_hz": 20,
        "preload": ("timed", "fast", "powered", "plain"),
        **settings,
    }
    return AgentConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def timed_agent(repo, device_profile) -> Iterator[AgentServer]:
    with running_agent(_serve(repo, device_profile, "simdev", sim_seed=SEED, queue_capacity=4)) as server:
        yield server


@pytest.fixture(scope="module")
def stub(timed_agent) -> Iterator[edge_agent_pb2_grpc.EdgeAgentStub]:
    with grpc.insecure_channel(timed_agent.address) as channel:
        yield edge_agent_pb2_grpc.EdgeAgentStub(channel)


def generate(stub, model: str = "timed", labels=(1,), timeout_s: float = 30.0, **fields) -> pb.GenerateResponse:
    return stub.Generate(pb.GenerateRequest(model=model, labels=list(labels), seed=1, **fields), timeout=timeout_s)


def modeled_s(m: pb.Measurement) -> float:
    return float(re.search(r"modeled ([0-9.]+) s", m.emulated_delay_model).group(1))  # type: ignore[union-attr]


def test_generate_takes_the_modeled_time_with_modeled_energy(stub) -> None:
    for _ in range(3):
        start_s = time.perf_counter()
        response = generate(stub)
        client_s = time.perf_counter() - start_s
        m = response.measurement
        assert np.asarray(response.images.shape).tolist() == [1, 1, 4, 4]  # real images
        assert m.emulated_delay_model.startswith(TIMED_LABEL + ": modeled ")
        modeled = m.energy_j / MAX_POWER_W  # energy = max_power_w x modeled compute (no energy in the profile)
        assert 0.14 < modeled < 0.26 and modeled == pytest.approx(modeled_s(m), abs=1e-4)
        assert m.energy_source == "modeled" and m.energy_method.startswith("modeled: max_power_w x modeled compute")
        assert m.compute_time_s < modeled  # the real compute stays measured (tiny model: ~ms)
        assert m.emulated_delay_s == pytest.approx(modeled - m.compute_time_s, abs=0.01)  # the hold
        assert m.total_time_s >= modeled and client_s >= m.total_time_s
        assert len(m.step_times_s) == 5


def test_draws_follow_the_seeded_sequence(stub) -> None:
    reported = [generate(stub).measurement.energy_j / MAX_POWER_W for _ in range(4)]
    rng = np.random.default_rng(SEED)
    expected = [truncated_normal(0.2, 0.01, float(rng.random())) for _ in range(200)]
    # Other tests of this module may have drawn before; the agent's draws continue the sequence.
    start = int(np.argmin([abs(e - reported[0]) for e in expected]))
    assert reported == pytest.approx(expected[start : start + 4], rel=1e-9)


def test_steps_and_batch_move_the_modeled_time(stub) -> None:
    m = generate(stub, steps=10, labels=(1, 2)).measurement  # batch 2 from batch 1, x2: 0.8 +- 0.04 s
    assert 0.65 < m.energy_j / MAX_POWER_W < 0.95 and m.total_time_s >= m.energy_j / MAX_POWER_W


def test_the_hold_occupies_the_model_like_the_modeled_device(stub) -> None:
    """Two requests at once: the second waits for the first's modeled time, as on the real device."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(generate, stub) for _ in range(2)]
        results = [f.result().measurement for f in futures]
    first, second = sorted(results, key=lambda m: m.queue_time_s)
    assert second.queue_time_s >= modeled_s(first) - 0.02
    assert second.total_time_s >= modeled_s(first) + modeled_s(second) - 0.02


def test_profile_energy_is_used_where_the_profile_has_it(stub) -> None:
    m = generate(stub, model="powered").measurement  # std 0: exactly the point
    assert m.energy_j == pytest.approx(3.0) and m.energy_source == "modeled"
    assert m.energy_method.startswith("modeled: profile energy x modeled compute")
    assert m.total_time_s >= 0.1


def test_overruns_are_counted_not_hidden(stub) -> None:
    before = stub.GetInfo(pb.GetInfoRequest(), timeout=5).device.sources[0].note
    count = int(re.search(r"(\d+) request\(s\) whose real compute exceeded", before).group(1))  # type: ignore[union-attr]
    m = generate(stub, model="fast").measurement
    assert m.emulated_delay_s == 0.0 and m.energy_j == 0.0
    assert m.emulated_delay_model.endswith("real compute was longer, not held")
    after = stub.GetInfo(pb.GetInfoRequest(), timeout=5).device.sources[0].note
    assert f"{count + 1} request(s) whose real compute exceeded the modeled time" in after


def test_info_names_the_device_profile_and_the_timed_models(stub, device_profile) -> None:
    info = stub.GetInfo(pb.GetInfoRequest(), timeout=5)
    assert info.device.kind == "simulated" and info.device.name == "test device (simulated)"
    note = info.device.sources[0].note
    assert f"simulated from device profile '{DEVICE}' ({device_profile})" in note
    assert "models: badprof (not loaded), fast (measured), powered (measured), timed (measured);" in note
    assert "plain" not in note and f"seed {SEED}" in note


def test_a_malformed_profile_fails_the_load_and_the_agent_keeps_serving(stub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.LoadModel(pb.LoadModelRequest(name="badprof"), timeout=30)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"profile-{DEVICE}.toml: points[1].compute_s: must be >= 0" in info.value.details()
    listed = {m.name: m for m in stub.ListModels(pb.ListModelsRequest(), timeout=5).models}
    assert "points[1].compute_s" in listed["badprof"].error and not listed["badprof"].loaded
    assert generate(stub).measurement.emulated_delay_model.startswith(TIMED_LABEL)


def test_a_model_without_profile_is_measured_as_before(stub) -> None:
    m = generate(stub, model="plain").measurement
    assert m.emulated_delay_s == 0.0 and m.emulated_delay_model == ""
    assert m.energy_source == "modeled" and m.energy_method in ("counter", "integrated")  # the device's own


def test_a_hold_past_the_deadline_answers_deadline_exceeded(stub) -> None:
    start_s = time.perf_counter()
    with pytest.raises(grpc.RpcError) as info:
        generate(stub, timeout_s=0.1)  # modeled 0.2 s
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.perf_counter() - start_s < 0.15  # answered at once, not after the hold
    assert generate(stub).measurement.total_time_s >= 0.14  # and it keeps serving


def test_kserve_reports_the_hold(timed_agent) -> None:
    request = kserve_v2_pb2.ModelInferRequest(model_name="timed", id="r1")
    request.inputs.add(name="LABEL", datatype="INT32", shape=[1])
    request.raw_input_contents.append(np.asarray([4], dtype="<i4").tobytes())
    with grpc.insecure_channel(timed_agent.address) as channel:
        response = kserve_v2_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    params = response.parameters
    assert params["emulated_delay_model"].string_param.startswith(TIMED_LABEL)
    assert params["energy_source"].string_param == "modeled"
    assert 0.1 < params["emulated_delay_s"].double_param < 0.26


def test_wan_delay_and_hold_add_up(repo, device_profile) -> None:
    config = _serve(repo, device_profile, "cloud", preload=("timed",), emulated_delay_ms=50.0)
    with running_agent(config) as server, grpc.insecure_channel(server.address) as channel:
        m = generate(edge_agent_pb2_grpc.EdgeAgentStub(channel)).measurement
    assert m.emulated_delay_model.startswith(TIMED_LABEL)
    assert m.emulated_delay_model.endswith(" + emulated-wan-rtt:constant(mean_ms=50)")
    modeled = m.energy_j / MAX_POWER_W
    assert m.emulated_delay_s == pytest.approx(modeled - m.compute_time_s + 0.05, abs=0.01)
    assert m.total_time_s >= modeled + 0.05


def test_without_a_named_device_profile_nothing_changes(repo, sim_profile_toml, tmp_path) -> None:
    """The old-style sim profile (no top-level name): model profiles are not read, timing is measured."""
    profile = tmp_path / "sim.toml"
    profile.write_text(sim_profile_toml(max_power_w=MAX_POWER_W))
    with running_agent(_serve(repo, profile, "unnamed")) as server, grpc.insecure_channel(server.address) as ch:
        stub = edge_agent_pb2_grpc.EdgeAgentStub(ch)
        assert server.agent.sim_timing is None
        info = stub.GetInfo(pb.GetInfoRequest(), timeout=5)
        assert server.agent.status().device == server.agent.device.info()  # no note added
        assert all("drawn from" not in s.note for s in info.device.sources)
        for model in ("timed", "plain"):
            m = generate(stub, model=model).measurement
            assert m.emulated_delay_s == 0.0 and m.emulated_delay_model == ""
            assert m.energy_method in ("counter", "integrated") and m.total_time_s < 0.2
        # A malformed profile is not even read.
        assert stub.LoadModel(pb.LoadModelRequest(name="badprof"), timeout=30).name == "badprof"
