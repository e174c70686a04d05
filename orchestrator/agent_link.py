"""The daemon's asynchronous connection to one agent: EdgeAgent calls and the standard health check.

One ``grpc.aio`` channel per agent, shared by the router, the health checker and the telemetry
ingest. Every call has a time limit; errors surface as ``grpc.aio.AioRpcError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2_grpc

from orchestrator import serde
from protos import edge_agent_pb2_grpc


class AgentLink:
    """EdgeAgent and Health calls to the agent at ``address``.

    Args:
        name: the agent's name (labels telemetry rows).
        address: its HOST:PORT.
        max_message_bytes: largest message sent or received, bytes.
    """

    def __init__(self, name: str, address: str, max_message_bytes: int = 4 * 1024 * 1024) -> None:
        self.name = name
        self.address = address
        self._channel = grpc.aio.insecure_channel(
            address,
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
            ],
        )
        self._stub = edge_agent_pb2_grpc.EdgeAgentStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def healthy(self, timeout_s: float) -> bool:
        """True when the agent's overall health status is SERVING; False on any error."""
        try:
            response = await self._health.Check(serde.health_request(), timeout=timeout_s)
        except grpc.aio.AioRpcError:
            return False
        return serde.is_serving(response)

    async def info(self, timeout_s: float) -> serde.RemoteAgent:
        return serde.agent_from_proto(await self._stub.GetInfo(serde.info_request(), timeout=timeout_s))

    async def models(self, timeout_s: float) -> list[serde.RemoteModel]:
        return serde.models_from_proto(await self._stub.ListModels(serde.list_request(), timeout=timeout_s))

    async def load(self, model: str, timeout_s: float) -> serde.Loaded:
        return serde.loaded_from_proto(await self._stub.LoadModel(serde.load_request(model), timeout=timeout_s))

    async def unload(self, model: str, timeout_s: float) -> None:
        await self._stub.UnloadModel(serde.unload_request(model), timeout=timeout_s)

    async def generate(
        self, model: str, label: int, steps: int | None, seed: int, request_id: str, timeout_s: float
    ) -> serde.Generated:
        """One image of class ``label``; ``timeout_s`` is the request's remaining time."""
        request = serde.forward_request(model, label, steps, seed, request_id)
        return serde.generated_from_proto(await self._stub.Generate(request, timeout=timeout_s))

    async def telemetry(self, from_seq: int, batch_size: int) -> AsyncIterator[serde.TelemetryChunk]:
        """Telemetry batches from ``from_seq`` (0: from the newest sample) until cancelled or broken."""
        call = self._stub.StreamTelemetry(serde.telemetry_request(from_seq, batch_size))
        try:
            async for batch in call:
                yield serde.telemetry_from_proto(batch, self.name)
        finally:
            call.cancel()

    async def close(self) -> None:
        await self._channel.close()
