"""The agent's side of registration: bounded retries, heartbeats, re-registration on NOT_FOUND.

A fake Orchestrator service on a free port stands in for the daemon, so each answer is scripted.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from types import SimpleNamespace

import grpc
import pytest

from node_agent.registration import Registration, advertised_address
from protos import orchestrator_pb2 as pb
from protos import orchestrator_pb2_grpc as pb_grpc


def _fake_agent() -> SimpleNamespace:
    device = SimpleNamespace(kind="simulated", name="fake", mem_total_bytes=8_000_000_000, sources={"power": "modeled"})
    status = SimpleNamespace(device=device, version="0.1.0", execution_providers=("CPUExecutionProvider",))
    engine = SimpleNamespace(loaded=lambda: ["tiny"], queue_depth=lambda: 2)
    return SimpleNamespace(name="edge-f", status=lambda: status, list_models=lambda: [], engine=engine)


class ScriptedOrchestrator(pb_grpc.OrchestratorServicer):
    """Answers heartbeats from a script of status codes (None = OK), then OK."""

    def __init__(self, heartbeat_codes: list[grpc.StatusCode | None]) -> None:
        self.registrations: list[pb.RegisterAgentRequest] = []
        self.heartbeats: list[pb.HeartbeatRequest] = []
        self.script = list(heartbeat_codes)

    async def RegisterAgent(self, request, context):
        self.registrations.append(request)
        return pb.RegisterAgentResponse(heartbeat_interval_s=0.05)

    async def Heartbeat(self, request, context):
        self.heartbeats.append(request)
        code = self.script.pop(0) if self.script else None
        if code is not None:
            await context.abort(code, "scripted")
        return pb.HeartbeatResponse(heartbeat_interval_s=0.05)


async def _with_orchestrator(servicer: ScriptedOrchestrator, body) -> None:
    server = grpc.aio.server()
    pb_grpc.add_OrchestratorServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        await body(f"127.0.0.1:{port}")
    finally:
        await server.stop(0)


async def _until(check, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_registers_then_heartbeats_and_registers_again_on_not_found() -> None:
    servicer = ScriptedOrchestrator([None, grpc.StatusCode.NOT_FOUND])

    async def body(target: str) -> None:
        registration = Registration(_fake_agent(), "127.0.0.1:5555", target, heartbeat_s=1.0)
        registration.start()
        await _until(lambda: registration.registrations == 2 and registration.heartbeats >= 2)
        await registration.stop()
        assert registration.interval_s == 0.05  # the orchestrator's, not the agent's 1 s

    asyncio.run(_with_orchestrator(servicer, body))
    first, second = servicer.registrations
    assert first.name == "edge-f" and first.address == "127.0.0.1:5555"
    assert first.capabilities.device_kind == "simulated" and first.capabilities.mem_total_bytes == 8_000_000_000
    assert [(s.metric, s.source) for s in first.capabilities.telemetry_sources] == [("power", "modeled")]
    assert first.instance_id == second.instance_id and len(first.instance_id) == 32
    assert list(first.loaded_models) == ["tiny"]
    # seq 1 acknowledged, seq 2 NOT_FOUND, then a new registration numbers from 1 again
    assert [h.seq for h in servicer.heartbeats[:3]] == [1, 2, 1]
    assert servicer.heartbeats[0].loaded_models == ["tiny"] and servicer.heartbeats[0].queue_depth == 2


def test_registers_again_after_repeated_heartbeat_failures() -> None:
    servicer = ScriptedOrchestrator([grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL])

    async def body(target: str) -> None:
        registration = Registration(_fake_agent(), "h:1", target, heartbeat_s=0.05, max_heartbeat_failures=2)
        registration.start()
        await _until(lambda: registration.registrations == 2 and registration.heartbeats >= 1)
        await registration.stop()

    asyncio.run(_with_orchestrator(servicer, body))


def test_gives_up_after_bounded_attempts_with_capped_backoff(caplog) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{sock.getsockname()[1]}"  # nothing listens there once closed

    async def body() -> Registration:
        registration = Registration(
            _fake_agent(), "h:1", target, 0.05, attempts=4, backoff_initial_s=0.01, backoff_max_s=0.02, rpc_timeout_s=1
        )
        registration.start()
        await _until(lambda: registration.gave_up)
        await registration.stop()
        return registration

    caplog.set_level(logging.INFO, logger="node_agent.registration")
    start = time.monotonic()
    registration = asyncio.run(body())
    assert registration.registrations == 0 and time.monotonic() - start < 5
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4 and "attempt 4/4" in warnings[-1] and "no attempts left" in warnings[-1]
    assert [w.rpartition("retrying in ")[2] for w in warnings[:3]] == ["0.01 s", "0.02 s", "0.02 s"]  # capped
    assert any("gives up" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


@pytest.mark.parametrize(
    ("host", "expected"), [("127.0.0.1", "127.0.0.1:7"), ("0.0.0.0", f"{socket.gethostname()}:7"), ("[::]", None)]
)
def test_advertised_address_is_the_bound_one(host: str, expected: str | None) -> None:
    assert advertised_address(host, 7) == (expected or f"{socket.gethostname()}:7")
