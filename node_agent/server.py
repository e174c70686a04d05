"""The agent's gRPC server: EdgeAgent + KServe v2 + health + reflection on one grpc.aio server.

Limits are the server's own: messages over ``max_message_bytes`` and RPCs beyond
``max_concurrent_rpcs`` are answered RESOURCE_EXHAUSTED by gRPC itself. SIGTERM/SIGINT stop it
gracefully: health turns NOT_SERVING, in-flight RPCs get a grace period, queued requests fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from node_agent.agent import Agent
from node_agent.config import AgentConfig
from node_agent.registration import Registration, advertised_address
from node_agent.servicers.edge_agent import EdgeAgentServicer
from node_agent.servicers.kserve import KServeServicer
from protos import edge_agent_pb2, edge_agent_pb2_grpc, kserve_v2_pb2, kserve_v2_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    edge_agent_pb2.DESCRIPTOR.services_by_name["EdgeAgent"].full_name,
    kserve_v2_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
)
GRACE_S = 5.0


class AgentServer:
    """An agent and its started gRPC server, on the current event loop."""

    def __init__(self, agent: Agent, server: grpc.aio.Server, port: int, health: health_aio.HealthServicer):
        self.agent = agent
        self.server = server
        self.port = port
        self.loop = asyncio.get_running_loop()  # the loop the server runs on
        self._health = health
        self.registration: Registration | None = None  # with the orchestrator, when configured

    @property
    def address(self) -> str:
        host = self.agent.config.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    async def stop(self, grace_s: float = GRACE_S) -> None:
        """No more heartbeats, health NOT_SERVING, stop accepting, let in-flight RPCs finish, free everything."""
        if self.registration is not None:
            await self.registration.stop()
        await self._health.enter_graceful_shutdown()
        self.agent.closing = True  # telemetry streams end within their 1 s wait
        await self.server.stop(grace_s)
        self.agent.close()


async def start_server(config: AgentConfig, agent: Agent | None = None) -> AgentServer:
    """Build the agent, bind the server (port 0 picks a free port) and start both."""
    agent = agent or Agent(config)
    await asyncio.get_running_loop().run_in_executor(None, agent.start)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
    )
    edge_agent_pb2_grpc.add_EdgeAgentServicer_to_server(EdgeAgentServicer(agent), server)
    kserve_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(KServeServicer(agent), server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    port = server.add_insecure_port(config.listen)
    if port == 0:
        agent.close()
        raise OSError(f"listen: cannot bind {config.listen}")
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("agent %s serving on %s (device %s)", agent.name, config.listen, agent.device.info().kind)
    running = AgentServer(agent, server, port, health)
    if config.orchestrator is not None:
        address = advertised_address(config.listen.rpartition(":")[0], port)
        running.registration = Registration(agent, address, config.orchestrator, config.heartbeat_s)
        running.registration.start()
    return running


async def serve(config: AgentConfig) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully."""
    running = await start_server(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"edgetb-agent {config.name} listening on {running.address}", flush=True)
    await stop.wait()
    log.info("stopping agent %s", config.name)
    await running.stop()


@contextlib.contextmanager
def running_agent(config: AgentConfig, agent: Agent | None = None) -> Iterator[AgentServer]:
    """Run an agent server on a background thread with its own event loop (tests, benchmarks).

    Yields the started server; on exit it is stopped and the thread joined.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=f"agent-{config.name}", daemon=True)
    thread.start()
    try:
        running = asyncio.run_coroutine_threadsafe(start_server(config, agent), loop).result(timeout=120)
        try:
            yield running
        finally:
            asyncio.run_coroutine_threadsafe(running.stop(grace_s=1.0), loop).result(timeout=60)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
