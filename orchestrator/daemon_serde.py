"""Orchestrator protobuf <-> the daemon's own types, for its server and its clients.

The only module that touches ``orchestrator_pb2`` on the orchestrator side.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from orchestrator.registry import AgentEntry, Capabilities
from orchestrator.router import Routed, SubmitSpec
from protos import orchestrator_pb2 as pb


@dataclass(frozen=True)
class Registration:
    name: str
    address: str
    instance_id: str
    capabilities: Capabilities
    loaded_models: tuple[str, ...]


@dataclass(frozen=True)
class Beat:
    name: str
    seq: int
    loaded_models: tuple[str, ...]
    queue_depth: int


@dataclass(frozen=True)
class AgentView:
    """One agent as GetStatus reports it."""

    name: str
    address: str
    state: str
    last_heartbeat_age_s: float | None
    loaded_models: tuple[str, ...]
    queue_depth: int
    power_source: str
    power_w: float | None
    registered: bool
    device_kind: str
    telemetry_rows: int
    telemetry_dropped: int


@dataclass(frozen=True)
class DaemonStatus:
    """What GetStatus reports."""

    agents: tuple[AgentView, ...]
    requests_by_outcome: dict[str, int]
    policies: tuple[str, ...]
    run_id: str
    uptime_s: float


# --- the daemon's side --------------------------------------------------------------------------


def registration_from_proto(request: pb.RegisterAgentRequest) -> Registration:
    c = request.capabilities
    return Registration(
        name=request.name,
        address=request.address,
        instance_id=request.instance_id,
        loaded_models=tuple(request.loaded_models),
        capabilities=Capabilities(
            device_kind=c.device_kind,
            device_name=c.device_name,
            mem_total_bytes=c.mem_total_bytes,
            telemetry_sources=tuple((s.metric, s.source) for s in c.telemetry_sources),
            models=tuple(c.models),
            version=c.version,
            execution_providers=tuple(c.execution_providers),
        ),
    )


def register_response(heartbeat_s: float) -> pb.RegisterAgentResponse:
    return pb.RegisterAgentResponse(heartbeat_interval_s=heartbeat_s)


def beat_from_proto(request: pb.HeartbeatRequest) -> Beat:
    return Beat(request.name, request.seq, tuple(request.loaded_models), request.queue_depth)


def heartbeat_response(heartbeat_s: float) -> pb.HeartbeatResponse:
    return pb.HeartbeatResponse(heartbeat_interval_s=heartbeat_s)


def submit_from_proto(request: pb.SubmitRequest) -> SubmitSpec:
    """Decode a Submit; an empty request id gets a fresh one."""
    which = request.WhichOneof("quality_or_steps")
    return SubmitSpec(
        request_id=request.request_id or uuid.uuid4().hex,
        model=request.model,
        label=request.label,
        steps=request.steps if which == "steps" else None,
        quality_floor=request.quality_floor if which == "quality_floor" else None,
        deadline_s=request.deadline_s,
        seed=request.seed,
        snr_db=request.snr_db if request.HasField("snr_db") else None,
        w_latency=request.w_latency if request.HasField("w_latency") else None,
        w_energy=request.w_energy if request.HasField("w_energy") else None,
    )


def submit_response(routed: Routed) -> pb.SubmitResponse:
    image = np.ascontiguousarray(routed.image, dtype="<f4")
    response = pb.SubmitResponse(
        request_id=routed.request_id,
        model=routed.model,
        agent=routed.agent,
        image=pb.Tensor(dtype="float32", shape=image.shape, data=image.tobytes()),
        steps=routed.steps,
        steps_source=routed.steps_source,
        latency_s=routed.latency_s,
        agent_time_s=routed.agent_time_s,
        queue_time_s=routed.queue_time_s,
        compute_time_s=routed.compute_time_s,
        energy_source=routed.energy_source,
        attempts=routed.attempts,
        loaded_model=routed.loaded_model,
        downlink_s=routed.downlink_s,
    )
    if routed.bandwidth_share is not None:
        response.bandwidth_share = routed.bandwidth_share
    if routed.energy_j is not None:
        response.energy_j = routed.energy_j
    if routed.quality is not None:
        response.quality = routed.quality
    return response


def status_response(
    entries: Iterable[AgentEntry],
    outcomes: Mapping[str, int],
    policies: Iterable[str],
    run_id: str,
    uptime_s: float,
    now_s: float,
) -> pb.StatusResponse:
    """GetStatus from the registry (``now_s`` on ``time.monotonic()``'s clock)."""
    response = pb.StatusResponse(
        requests_by_outcome=dict(outcomes), policies=list(policies), run_id=run_id, uptime_s=uptime_s
    )
    for e in entries:
        agent = response.agents.add(
            name=e.name,
            address=e.address,
            state=e.state,
            loaded_models=sorted(e.loaded_models),
            queue_depth=e.queue_depth,
            power_source=e.power_source,
            registered=e.registered,
            device_kind=e.capabilities.device_kind,
            telemetry_rows=e.telemetry_rows,
            telemetry_dropped=e.telemetry_dropped,
        )
        age_s = e.age_s(now_s)
        if age_s is not None:
            agent.last_heartbeat_age_s = age_s
        if e.power_w is not None:
            agent.power_w = e.power_w
    return response


# --- clients ------------------------------------------------------------------------------------


def submit_request(spec: SubmitSpec) -> pb.SubmitRequest:
    request = pb.SubmitRequest(
        request_id=spec.request_id, model=spec.model, label=spec.label, deadline_s=spec.deadline_s, seed=spec.seed
    )
    if spec.steps is not None:
        request.steps = spec.steps
    elif spec.quality_floor is not None:
        request.quality_floor = spec.quality_floor
    if spec.snr_db is not None:
        request.snr_db = spec.snr_db
    if spec.w_latency is not None:
        request.w_latency = spec.w_latency
    if spec.w_energy is not None:
        request.w_energy = spec.w_energy
    return request


def routed_from_proto(response: pb.SubmitResponse) -> Routed:
    image = np.frombuffer(response.image.data, dtype="<f4").reshape(tuple(response.image.shape))
    return Routed(
        request_id=response.request_id,
        model=response.model,
        agent=response.agent,
        image=image,
        steps=response.steps,
        steps_source=response.steps_source,
        latency_s=response.latency_s,
        agent_time_s=response.agent_time_s,
        queue_time_s=response.queue_time_s,
        compute_time_s=response.compute_time_s,
        energy_j=response.energy_j if response.HasField("energy_j") else None,
        energy_source=response.energy_source,
        attempts=response.attempts,
        loaded_model=response.loaded_model,
        quality=response.quality if response.HasField("quality") else None,
        downlink_s=response.downlink_s,
        bandwidth_share=response.bandwidth_share if response.HasField("bandwidth_share") else None,
    )


def status_request() -> pb.GetStatusRequest:
    return pb.GetStatusRequest()


def status_from_proto(response: pb.StatusResponse) -> DaemonStatus:
    return DaemonStatus(
        agents=tuple(
            AgentView(
                name=a.name,
                address=a.address,
                state=a.state,
                last_heartbeat_age_s=a.last_heartbeat_age_s if a.HasField("last_heartbeat_age_s") else None,
                loaded_models=tuple(a.loaded_models),
                queue_depth=a.queue_depth,
                power_source=a.power_source,
                power_w=a.power_w if a.HasField("power_w") else None,
                registered=a.registered,
                device_kind=a.device_kind,
                telemetry_rows=a.telemetry_rows,
                telemetry_dropped=a.telemetry_dropped,
            )
            for a in response.agents
        ),
        requests_by_outcome=dict(response.requests_by_outcome),
        policies=tuple(response.policies),
        run_id=response.run_id,
        uptime_s=response.uptime_s,
    )
