"""EdgeAgent protobuf <-> the agent's own types. The only module that touches ``edge_agent_pb2``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from node_agent.agent import AgentStatus, ModelListing
from node_agent.devices import DeviceInfo
from node_agent.generation import GenerationRequest, MeasuredGeneration
from node_agent.runtime.engine import LoadReport
from node_agent.telemetry import TelemetrySample
from protos import edge_agent_pb2 as pb

#: DeviceInfo metric names -> the names the wire uses.
_METRICS = {"power": "power", "energy": "energy", "mem": "memory", "util": "utilisation", "clock": "clock"}


def generate_request(request: pb.GenerateRequest) -> GenerationRequest:
    """Decode a Generate request; unset optional fields stay None so the model's defaults apply."""
    return GenerationRequest(
        model=request.model,
        labels=tuple(request.labels),
        steps=request.steps if request.HasField("steps") else None,
        seed=request.seed,
        guidance=request.guidance if request.HasField("guidance") else None,
        scheduler=request.scheduler or None,
        eta=request.eta,
        request_id=request.request_id,
    )


def generate_response(result: MeasuredGeneration) -> pb.GenerateResponse:
    images = np.ascontiguousarray(result.images, dtype="<f4")
    measurement = pb.Measurement(
        queue_time_s=result.queue_time_s,
        compute_time_s=result.compute_time_s,
        step_times_s=result.step_times_s,
        decode_time_s=result.decode_time_s,
        peak_mem_bytes=result.peak_mem_bytes,
        peak_mem_source=result.peak_mem_source,
        energy_source=result.energy_source,
        energy_method=result.energy_method,
        total_time_s=result.total_time_s,
        emulated_delay_s=result.emulated_delay_s,
        emulated_delay_model=result.emulated_delay_model,
    )
    if result.energy_j is not None:
        measurement.energy_j = result.energy_j
    return pb.GenerateResponse(
        model=result.model,
        request_id=result.request_id,
        images=pb.Tensor(dtype="float32", shape=images.shape, data=images.tobytes()),
        steps=result.steps,
        scheduler=result.scheduler,
        guidance=result.guidance,
        seed=result.seed,
        measurement=measurement,
        agent=result.agent,
    )


def tensor_to_numpy(tensor: pb.Tensor) -> np.ndarray:
    """Decode a Tensor (for clients of the agent)."""
    return np.frombuffer(tensor.data, dtype=np.dtype(tensor.dtype).newbyteorder("<")).reshape(tuple(tensor.shape))


def device_info(info: DeviceInfo, providers: Sequence[str]) -> pb.DeviceInfo:
    message = pb.DeviceInfo(
        kind=str(info.kind),
        name=info.name,
        mem_total_bytes=info.mem_total_bytes or 0,
        execution_providers=providers,
    )
    for metric, wire_name in _METRICS.items():
        source = info.sources.get(metric)
        if source is None:
            continue
        message.sources.add(
            metric=wire_name,
            source=str(source),
            native_period_s=info.native_update_period_s or 0.0,
            note=info.unavailable.get(metric, "") or "; ".join(f"{k}: {v}" for k, v in info.notes.items()),
        )
    return message


def agent_info(status: AgentStatus) -> pb.AgentInfo:
    return pb.AgentInfo(
        name=status.name,
        version=status.version,
        hostname=status.hostname,
        device=device_info(status.device, status.execution_providers),
        telemetry_hz=status.telemetry_hz,
        measured_sample_period_s=status.measured_sample_period_s or 0.0,
        models_available=status.models_available,
        models_loaded=status.models_loaded,
        uptime_s=status.uptime_s,
        queue_capacity=status.queue_capacity,
        emulated_delay_mean_s=status.emulated_delay_mean_s,
        emulated_delay_jitter_s=status.emulated_delay_jitter_s,
        emulated_delay_model=status.emulated_delay_model,
    )


def model_list(listings: Sequence[ModelListing]) -> pb.ListModelsResponse:
    response = pb.ListModelsResponse()
    for item in listings:
        spec = item.spec
        model = response.models.add(
            name=item.name,
            loaded=item.loaded,
            error=item.error,
            file_bytes=item.file_bytes,
        )
        if spec is not None:
            model.kind = spec.kind
            model.description = spec.description
            model.image_shape.extend(spec.image_shape)
            model.num_classes = spec.num_classes
            model.class_names.extend(spec.class_names)
            model.num_train_timesteps = spec.schedule.num_train_timesteps
            model.default_steps = spec.default_steps
            model.default_scheduler = spec.default_scheduler
            model.default_guidance = spec.default_guidance
            model.max_batch = spec.max_batch
    return response


def load_response(report: LoadReport, already_loaded: bool) -> pb.LoadModelResponse:
    return pb.LoadModelResponse(
        name=report.name,
        load_time_s=report.load_time_s,
        mem_delta_bytes=report.mem_delta_bytes,
        execution_providers=report.providers,
        already_loaded=already_loaded,
    )


def unload_response(name: str, freed_bytes: int) -> pb.UnloadModelResponse:
    return pb.UnloadModelResponse(name=name, freed_bytes=freed_bytes)


def telemetry_sample(sample: TelemetrySample) -> pb.TelemetrySample:
    r = sample.reading
    extra = dict(r.extra)
    message = pb.TelemetrySample(
        seq=sample.seq,
        t_unix_s=r.t_unix_s,
        power_source=str(r.power_source),
        energy_source=str(r.energy_source),
        mem_source=str(r.mem_source),
        rails_w=dict(r.rails_w),
        queue_depth=int(extra.pop("queue_depth", 0)),
        extra=extra,
    )
    for name in ("power_w", "energy_j", "util_pct", "clock_mhz"):
        value = getattr(r, name)
        if value is not None:
            setattr(message, name, value)
    if r.mem_used_bytes is not None:
        message.mem_used_bytes = r.mem_used_bytes
    if r.mem_total_bytes is not None:
        message.mem_total_bytes = r.mem_total_bytes
    return message


def telemetry_batch(agent: str, samples: Sequence[TelemetrySample], next_seq: int, dropped: int) -> pb.TelemetryBatch:
    return pb.TelemetryBatch(
        agent=agent, samples=[telemetry_sample(s) for s in samples], next_seq=next_seq, dropped=dropped
    )
