"""EdgeAgent protobuf <-> the orchestrator's own types. The only orchestrator module that touches
``edge_agent_pb2`` (the orchestrator never imports ``node_agent``: the wire is its only contract)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from grpc_health.v1 import health_pb2

from protos import edge_agent_pb2 as pb


@dataclass(frozen=True)
class RemoteModel:
    """A model as an agent's ListModels describes it."""

    name: str
    kind: str
    loaded: bool
    error: str
    num_classes: int
    num_train_timesteps: int
    default_steps: int
    image_shape: tuple[int, ...]
    file_bytes: int


@dataclass(frozen=True)
class Generated:
    """A Generate response: the images and what the agent measured."""

    model: str
    agent: str
    images: np.ndarray
    steps: int
    queue_time_s: float
    compute_time_s: float
    step_times_s: tuple[float, ...]
    total_time_s: float
    energy_j: float | None
    energy_source: str
    peak_mem_bytes: int
    #: emulated WAN delay the agent held the response back by (inside total_time_s; not measured)
    emulated_delay_s: float = 0.0


@dataclass(frozen=True)
class RemoteAgent:
    """An agent as its GetInfo describes it."""

    name: str
    hostname: str
    version: str
    device_kind: str
    device_name: str
    mem_total_bytes: int
    sources: dict[str, tuple[str, str]]  # metric -> (source label, note)
    execution_providers: tuple[str, ...]
    telemetry_hz: float
    measured_sample_period_s: float

    @property
    def power_source(self) -> str:
        """The source label of the agent's power metric."""
        return self.sources.get("power", ("unavailable", ""))[0]


@dataclass(frozen=True)
class Loaded:
    name: str
    load_time_s: float
    mem_delta_bytes: int
    providers: tuple[str, ...]
    already_loaded: bool


def models_from_proto(response: pb.ListModelsResponse) -> list[RemoteModel]:
    return [
        RemoteModel(
            name=m.name,
            kind=m.kind,
            loaded=m.loaded,
            error=m.error,
            num_classes=m.num_classes,
            num_train_timesteps=m.num_train_timesteps,
            default_steps=m.default_steps,
            image_shape=tuple(m.image_shape),
            file_bytes=m.file_bytes,
        )
        for m in response.models
    ]


def generate_request(
    model: str, labels: list[int], steps: int | None, seed: int, guidance: float | None = None
) -> pb.GenerateRequest:
    request = pb.GenerateRequest(model=model, labels=labels, seed=seed)
    if steps is not None:
        request.steps = steps
    if guidance is not None:
        request.guidance = guidance
    return request


def generated_from_proto(response: pb.GenerateResponse) -> Generated:
    m = response.measurement
    images = np.frombuffer(response.images.data, dtype="<f4").reshape(tuple(response.images.shape))
    return Generated(
        model=response.model,
        agent=response.agent,
        images=images,
        steps=response.steps,
        queue_time_s=m.queue_time_s,
        compute_time_s=m.compute_time_s,
        step_times_s=tuple(m.step_times_s),
        total_time_s=m.total_time_s,
        energy_j=m.energy_j if m.HasField("energy_j") else None,
        energy_source=m.energy_source,
        peak_mem_bytes=m.peak_mem_bytes,
        emulated_delay_s=m.emulated_delay_s,
    )


def loaded_from_proto(response: pb.LoadModelResponse) -> Loaded:
    return Loaded(
        name=response.name,
        load_time_s=response.load_time_s,
        mem_delta_bytes=response.mem_delta_bytes,
        providers=tuple(response.execution_providers),
        already_loaded=response.already_loaded,
    )


def info_request() -> pb.GetInfoRequest:
    return pb.GetInfoRequest()


def list_request() -> pb.ListModelsRequest:
    return pb.ListModelsRequest()


def load_request(name: str) -> pb.LoadModelRequest:
    return pb.LoadModelRequest(name=name)


def unload_request(name: str) -> pb.UnloadModelRequest:
    return pb.UnloadModelRequest(name=name)


def agent_from_proto(info: pb.AgentInfo) -> RemoteAgent:
    return RemoteAgent(
        name=info.name,
        hostname=info.hostname,
        version=info.version,
        device_kind=info.device.kind,
        device_name=info.device.name,
        mem_total_bytes=info.device.mem_total_bytes,
        sources={s.metric: (s.source, s.note) for s in info.device.sources},
        execution_providers=tuple(info.device.execution_providers),
        telemetry_hz=info.telemetry_hz,
        measured_sample_period_s=info.measured_sample_period_s,
    )


# --- the daemon's side: telemetry ingest, forwarded requests, health checks ------------------


@dataclass(frozen=True)
class TelemetryRow:
    """One telemetry sample of an agent, as the daemon stores it (None: the source had no value)."""

    agent: str
    seq: int
    t_unix_s: float
    power_w: float | None
    power_source: str
    energy_j: float | None
    energy_source: str
    mem_used_bytes: int | None
    mem_total_bytes: int | None
    mem_source: str
    util_pct: float | None
    clock_mhz: float | None
    queue_depth: int


@dataclass(frozen=True)
class TelemetryChunk:
    """One StreamTelemetry message: its samples, where to resume, and how many were lost."""

    agent: str
    rows: tuple[TelemetryRow, ...]
    next_seq: int
    dropped: int


def telemetry_request(from_seq: int, batch_size: int) -> pb.StreamTelemetryRequest:
    return pb.StreamTelemetryRequest(from_seq=from_seq, batch_size=batch_size)


def _optional(message: object, field: str) -> object | None:
    return getattr(message, field) if message.HasField(field) else None  # type: ignore[attr-defined]


def telemetry_from_proto(batch: pb.TelemetryBatch, agent: str) -> TelemetryChunk:
    """Decode a TelemetryBatch; ``agent`` names the rows (the daemon's name for the agent)."""
    rows = tuple(
        TelemetryRow(
            agent=agent,
            seq=s.seq,
            t_unix_s=s.t_unix_s,
            power_w=_optional(s, "power_w"),  # type: ignore[arg-type]
            power_source=s.power_source,
            energy_j=_optional(s, "energy_j"),  # type: ignore[arg-type]
            energy_source=s.energy_source,
            mem_used_bytes=_optional(s, "mem_used_bytes"),  # type: ignore[arg-type]
            mem_total_bytes=_optional(s, "mem_total_bytes"),  # type: ignore[arg-type]
            mem_source=s.mem_source,
            util_pct=_optional(s, "util_pct"),  # type: ignore[arg-type]
            clock_mhz=_optional(s, "clock_mhz"),  # type: ignore[arg-type]
            queue_depth=s.queue_depth,
        )
        for s in batch.samples
    )
    return TelemetryChunk(agent=agent, rows=rows, next_seq=batch.next_seq, dropped=batch.dropped)


def forward_request(model: str, label: int, steps: int | None, seed: int, request_id: str) -> pb.GenerateRequest:
    """The Generate request the daemon forwards for one submitted request (one image)."""
    request = generate_request(model, [label], steps, seed)
    request.request_id = request_id
    return request


def health_request(service: str = "") -> health_pb2.HealthCheckRequest:
    return health_pb2.HealthCheckRequest(service=service)


def is_serving(response: health_pb2.HealthCheckResponse) -> bool:
    return response.status == health_pb2.HealthCheckResponse.SERVING
