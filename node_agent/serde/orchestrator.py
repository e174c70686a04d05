"""Orchestrator protobuf <-> the agent's own types, for registration and heartbeats.

The only node-agent module that touches ``orchestrator_pb2`` (the agent never imports the
``orchestrator`` package: the wire is its only contract with the daemon).
"""

from __future__ import annotations

from collections.abc import Iterable

from node_agent.agent import AgentStatus, ModelListing
from protos import orchestrator_pb2 as pb

#: DeviceInfo metric names -> the names the wire uses (as in EdgeAgent's GetInfo).
_METRICS = {"power": "power", "energy": "energy", "mem": "memory", "util": "utilisation", "clock": "clock"}


def register_request(
    name: str,
    address: str,
    instance_id: str,
    status: AgentStatus,
    listings: Iterable[ModelListing],
    loaded_models: Iterable[str],
) -> pb.RegisterAgentRequest:
    """The RegisterAgent request: who the agent is, where it listens and what it can serve.

    Args:
        name: the agent's name.
        address: HOST:PORT the agent's gRPC server is reachable at.
        instance_id: new for every start of the agent.
        status: the agent's status (device, telemetry sources, version).
        listings: the repository's models; those that cannot be served (an error) are left out.
        loaded_models: the models loaded now.
    """
    device = status.device
    capabilities = pb.Capabilities(
        device_kind=str(device.kind),
        device_name=device.name,
        mem_total_bytes=device.mem_total_bytes or 0,
        models=[m.name for m in listings if not m.error and m.spec is not None],
        version=status.version,
        execution_providers=list(status.execution_providers),
    )
    for metric, wire_name in _METRICS.items():
        source = device.sources.get(metric)
        if source is not None:
            capabilities.telemetry_sources.add(metric=wire_name, source=str(source))
    return pb.RegisterAgentRequest(
        name=name,
        address=address,
        instance_id=instance_id,
        capabilities=capabilities,
        loaded_models=sorted(loaded_models),
    )


def heartbeat_request(name: str, seq: int, loaded_models: Iterable[str], queue_depth: int) -> pb.HeartbeatRequest:
    """A Heartbeat: sequence number (1, 2, ... per registration), loaded models, queue depth."""
    return pb.HeartbeatRequest(
        name=name, seq=seq, loaded_models=sorted(loaded_models), queue_depth=max(0, int(queue_depth))
    )


def heartbeat_interval_s(response: pb.RegisterAgentResponse | pb.HeartbeatResponse) -> float | None:
    """The interval the orchestrator assigned, in seconds; None when it assigned none (0)."""
    interval = response.heartbeat_interval_s
    return interval if interval > 0 else None
