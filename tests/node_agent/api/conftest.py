"""A real agent server on a free loopback port, serving tiny models, for the API tests.

The repository holds ``tiny`` (pixel, 1x4x4, T = 50), ``tiny-latent`` (latent 2x2x2 -> 1x4x4),
``slow`` (a pixel model whose every step runs a chain of 1024x1024 matrix products, so that queues
fill and deadlines pass mid-loop), ``broken`` (a corrupt ONNX file) and ``badspec`` (an invalid
model.toml). The device is the simulated
backend, so energy figures exist (labelled ``modeled``) on any machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from node_agent.config import AgentConfig
from node_agent.server import AgentServer, running_agent
from protos import edge_agent_pb2_grpc


@pytest.fixture(scope="module")
def model_repo(tmp_path_factory, write_model, onnx_kit) -> Path:
    root = tmp_path_factory.mktemp("models")
    doc = onnx_kit.spec_doc("tiny", image=(1, 4, 4), steps_T=50)
    doc["defaults"].update(steps=20, guidance=1.5, max_batch=16)
    write_model(root, "tiny", doc=doc)
    latent = onnx_kit.spec_doc("tiny-latent", "latent", image=(1, 4, 4), latent=(2, 2, 2), steps_T=50)
    write_model(root, "tiny-latent", "latent", doc=latent)
    slow = onnx_kit.spec_doc("slow", image=(1, 4, 4), steps_T=50)
    write_model(root, "slow", doc=slow, denoiser=onnx_kit.matmul_chain_denoiser)
    write_model(root, "broken", doc=onnx_kit.spec_doc("broken", steps_T=50))
    (root / "broken" / "denoiser.onnx").write_bytes(b"this is not an ONNX protobuf" * 10)
    bad = onnx_kit.spec_doc("badspec", steps_T=50)
    bad["schedule"]["beta_end"] = bad["schedule"]["beta_start"] / 2
    write_model(root, "badspec", doc=bad)
    return root


@pytest.fixture(scope="module")
def agent_server(model_repo, tmp_path_factory, sim_profile_toml) -> Iterator[AgentServer]:
    profile = tmp_path_factory.mktemp("sim") / "sim.toml"
    profile.write_text(sim_profile_toml())
    config = AgentConfig(
        name="test-agent",
        listen="127.0.0.1:0",
        models=model_repo,
        device="simulated",
        sim_profile=profile,
        telemetry_hz=50,
        queue_capacity=2,
        preload=("tiny", "tiny-latent", "slow"),
    )
    with running_agent(config) as server:
        yield server


@pytest.fixture(scope="module")
def channel(agent_server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(agent_server.address) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel) -> edge_agent_pb2_grpc.EdgeAgentStub:
    return edge_agent_pb2_grpc.EdgeAgentStub(channel)
