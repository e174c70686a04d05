"""A blocking client for one agent's EdgeAgent API (the orchestrator's side of the wire)."""

from __future__ import annotations

import grpc

from orchestrator import serde
from protos import edge_agent_pb2_grpc

#: Channel limits matching the agent's defaults.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def insecure_channel(target: str, max_message_bytes: int = MAX_MESSAGE_BYTES) -> grpc.Channel:
    """A blocking loopback/LAN channel with message limits matching the servers' defaults (no TLS)."""
    return grpc.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
    )


class AgentClient:
    """EdgeAgent calls with a per-call timeout; errors surface as ``grpc.RpcError``."""

    def __init__(self, target: str, timeout_s: float = 60.0) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._channel = insecure_channel(target)
        self._stub = edge_agent_pb2_grpc.EdgeAgentStub(self._channel)

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Block until the channel connects; raises ``grpc.FutureTimeoutError``."""
        grpc.channel_ready_future(self._channel).result(timeout=timeout_s)

    def info(self) -> serde.RemoteAgent:
        return serde.agent_from_proto(self._stub.GetInfo(serde.info_request(), timeout=self.timeout_s))

    def models(self) -> list[serde.RemoteModel]:
        return serde.models_from_proto(self._stub.ListModels(serde.list_request(), timeout=self.timeout_s))

    def load(self, name: str) -> serde.Loaded:
        return serde.loaded_from_proto(self._stub.LoadModel(serde.load_request(name), timeout=self.timeout_s))

    def unload(self, name: str) -> int:
        return self._stub.UnloadModel(serde.unload_request(name), timeout=self.timeout_s).freed_bytes

    def generate(
        self, model: str, labels: list[int], steps: int | None = None, seed: int = 0, guidance: float | None = None
    ) -> serde.Generated:
        request = serde.generate_request(model, labels, steps, seed, guidance)
        return serde.generated_from_proto(self._stub.Generate(request, timeout=self.timeout_s))

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
