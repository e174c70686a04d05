"""The EdgeAgent API of a real agent server on a loopback port: results, measurements, bad input."""

from __future__ import annotations

import concurrent.futures
import math

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from protos import edge_agent_pb2 as pb


def generate(stub, model="tiny", labels=(0, 1), **fields) -> pb.GenerateResponse:
    return stub.Generate(pb.GenerateRequest(model=model, labels=list(labels), **fields), timeout=30)


def code_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_health_and_reflection(agent_server, channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "edgetb.agent.v1.EdgeAgent", "inference.GRPCInferenceService"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING, service
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in replies[0].list_services_response.service}
    assert {"edgetb.agent.v1.EdgeAgent", "inference.GRPCInferenceService", "grpc.health.v1.Health"} <= names


def test_info_reports_device_and_sources(stub) -> None:
    info = stub.GetInfo(pb.GetInfoRequest(), timeout=5)
    assert info.name == "test-agent"
    assert info.device.kind == "simulated"
    sources = {s.metric: s.source for s in info.device.sources}
    assert sources["power"] == "modeled" and sources["energy"] == "modeled"
    assert info.device.execution_providers[-1] == "CPUExecutionProvider"
    assert info.models_available == 5  # tiny, tiny-latent, slow, broken, badspec
    assert info.telemetry_hz == 50


def test_list_load_generate_unload(stub) -> None:
    listed = {m.name: m for m in stub.ListModels(pb.ListModelsRequest(), timeout=5).models}
    assert set(listed) == {"tiny", "tiny-latent", "slow", "broken", "badspec"}
    assert "schedule.beta_end" in listed["badspec"].error and not listed["tiny"].error
    assert listed["badspec"].num_classes == 0  # no spec to describe
    assert listed["tiny"].num_train_timesteps == 50 and list(listed["tiny"].image_shape) == [1, 4, 4]

    assert stub.UnloadModel(pb.UnloadModelRequest(name="tiny-latent"), timeout=10).name == "tiny-latent"
    loaded = stub.LoadModel(pb.LoadModelRequest(name="tiny-latent"), timeout=30)
    assert loaded.load_time_s > 0 and not loaded.already_loaded
    assert "CPUExecutionProvider" in loaded.execution_providers
    again = stub.LoadModel(pb.LoadModelRequest(name="tiny-latent"), timeout=30)
    assert again.already_loaded

    response = generate(stub, "tiny-latent", labels=(0, 1, 2), steps=7, seed=5)
    images = np.frombuffer(response.images.data, dtype="<f4").reshape(tuple(response.images.shape))
    assert images.shape == (3, 1, 4, 4)
    assert response.steps == 7 and response.seed == 5 and response.agent == "test-agent"
    m = response.measurement
    assert len(m.step_times_s) == 7 and all(t > 0 for t in m.step_times_s)
    assert m.compute_time_s >= sum(m.step_times_s) and m.decode_time_s > 0
    assert m.total_time_s >= m.compute_time_s + m.queue_time_s - 1e-6
    # The simulated device's energy is a counter read at the window's edges: positive, labelled.
    assert m.HasField("energy_j") and m.energy_j > 0
    assert m.energy_source == "modeled" and m.energy_method == "counter"
    assert m.peak_mem_bytes > 0

    listed = {m.name: m for m in stub.ListModels(pb.ListModelsRequest(), timeout=5).models}
    assert listed["tiny-latent"].loaded
    stub.UnloadModel(pb.UnloadModelRequest(name="tiny-latent"), timeout=10)
    code, details = code_of(lambda: generate(stub, "tiny-latent"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "tiny-latent" in details
    stub.LoadModel(pb.LoadModelRequest(name="tiny-latent"), timeout=30)


def test_generation_is_seeded_and_deterministic(stub) -> None:
    a = generate(stub, steps=10, seed=1, guidance=2.0)
    b = generate(stub, steps=10, seed=1, guidance=2.0)
    c = generate(stub, steps=10, seed=2, guidance=2.0)
    assert a.images.data == b.images.data
    assert a.images.data != c.images.data
    defaults = generate(stub)  # unset steps/guidance take the model's defaults
    assert defaults.steps == 20 and defaults.guidance == 1.5 and defaults.scheduler == "ddim"


@pytest.mark.parametrize(
    ("fields", "labels", "field_name"),
    [
        ({"steps": 0}, (0,), "steps"),
        ({"steps": -3}, (0,), "steps"),
        ({"steps": 51}, (0,), "steps"),
        ({}, (10,), "label"),
        ({}, (-1,), "label"),
        ({"guidance": math.nan}, (0,), "guidance"),
        ({"guidance": math.inf}, (0,), "guidance"),
        ({}, (), "batch"),
        ({}, tuple(range(10)) * 2, "batch"),
        ({"scheduler": "euler"}, (0,), "scheduler"),
        ({"eta": 1.5}, (0,), "eta"),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_field(stub, fields, labels, field_name) -> None:
    code, details = code_of(lambda: generate(stub, labels=labels, **fields))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert field_name in details


@pytest.mark.parametrize("name", ["nope", "../tiny", "/etc/passwd", "tiny/../../x", ""])
def test_unknown_or_escaping_model_is_not_found(stub, name) -> None:
    assert code_of(lambda: generate(stub, model=name))[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: stub.LoadModel(pb.LoadModelRequest(name=name), timeout=5))[0] == grpc.StatusCode.NOT_FOUND


def test_corrupt_model_fails_its_load_and_others_keep_serving(stub) -> None:
    code, details = code_of(lambda: stub.LoadModel(pb.LoadModelRequest(name="broken"), timeout=30))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "broken" in details
    listed = {m.name: m for m in stub.ListModels(pb.ListModelsRequest(), timeout=5).models}
    assert listed["broken"].error == details and not listed["broken"].loaded
    code, _ = code_of(lambda: stub.LoadModel(pb.LoadModelRequest(name="badspec"), timeout=30))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert generate(stub, steps=3).steps == 3


def test_oversized_message_is_resource_exhausted(stub) -> None:
    huge = pb.GenerateRequest(model="tiny", labels=[0], request_id="x" * (5 * 1024 * 1024))
    code, _ = code_of(lambda: stub.Generate(huge, timeout=10))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert generate(stub, steps=2).steps == 2


def test_full_queue_is_resource_exhausted_and_nothing_is_lost(stub) -> None:
    """Queue capacity 2: of 12 slow requests fired at once some are refused, the rest complete."""
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(generate, stub, "slow", (0,), steps=40, seed=i) for i in range(12)]
        outcomes = []
        for f in futures:
            try:
                outcomes.append(f.result().steps)
            except grpc.RpcError as exc:
                outcomes.append(exc.code())
    refused = [o for o in outcomes if o == grpc.StatusCode.RESOURCE_EXHAUSTED]
    done = [o for o in outcomes if o == 40]
    assert refused and done and len(refused) + len(done) == 12
    assert generate(stub, steps=2).steps == 2


def test_deadline_is_honoured_between_steps(stub) -> None:
    full_s = generate(stub, "slow", (0,), steps=50).measurement.compute_time_s
    request = pb.GenerateRequest(model="slow", labels=[0], steps=50)
    code, _ = code_of(lambda: stub.Generate(request, timeout=max(full_s / 5, 0.002)))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert generate(stub, "slow", steps=1).steps == 1


def test_stream_telemetry_batches_and_resumes(stub) -> None:
    stream = stub.StreamTelemetry(pb.StreamTelemetryRequest(from_seq=1, batch_size=10), timeout=20)
    first = next(stream)
    stream.cancel()
    seqs = [s.seq for s in first.samples]
    assert len(seqs) == 10 and seqs == list(range(seqs[0], seqs[0] + 10))
    assert first.next_seq == seqs[-1] + 1 and first.agent == "test-agent"
    sample = first.samples[0]
    assert sample.power_source == "modeled" and sample.HasField("power_w") and sample.power_w > 0
    resumed = stub.StreamTelemetry(pb.StreamTelemetryRequest(from_seq=first.next_seq, batch_size=12), timeout=20)
    second = next(resumed)
    resumed.cancel()
    assert [s.seq for s in second.samples] == list(range(first.next_seq, first.next_seq + 12))
    energies = [s.energy_j for s in (*first.samples, *second.samples)]
    assert energies == sorted(energies)  # a cumulative counter


@pytest.mark.parametrize("batch_size", [5, 101])
def test_stream_telemetry_rejects_bad_batch_size(stub, batch_size) -> None:
    def call():
        return next(stub.StreamTelemetry(pb.StreamTelemetryRequest(batch_size=batch_size), timeout=5))

    code, details = code_of(call)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "batch_size" in details


def test_set_power_mode_is_unimplemented(stub) -> None:
    code, _ = code_of(lambda: stub.SetPowerMode(pb.SetPowerModeRequest(mode="MAXN"), timeout=5))
    assert code == grpc.StatusCode.UNIMPLEMENTED
