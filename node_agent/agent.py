"""The agent: repository, execution engine, device telemetry and per-request measurement together.

Both gRPC servicers (EdgeAgent and KServe v2) call this one object, so a request measures the same
way whichever API it came in by. Blocking work (model loads, denoising) runs off the event loop:
loads in the default executor, generation on the engine's per-model worker threads.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from node_agent import __version__
from node_agent.config import AgentConfig
from node_agent.devices import Device, DeviceInfo, Reading, probe_device
from node_agent.emulation import EmulatedDelay
from node_agent.generation import GenerationRequest, MeasuredGeneration
from node_agent.runtime.engine import DeadlineExceeded, Engine, GenerateParams, LoadReport, ModelLoadError
from node_agent.runtime.repository import ModelRepository, ModelSpec
from node_agent.runtime.session import choose_providers
from node_agent.telemetry import EnergyMeter, TelemetryLog, TelemetrySampler


def _execution_kind(requested: str, probed: str) -> str:
    """The device kind that picks ONNX Runtime's execution providers.

    An explicit ``--device`` decides. With ``auto`` the telemetry probe decides, except that a CUDA
    build of ONNX Runtime runs on the GPU even where NVML could not be opened for telemetry (then the
    GPU computes and the telemetry, correctly labelled, is the CPU's).
    """
    if requested != "auto":
        return requested
    if probed in ("nvidia", "jetson"):
        return probed
    return "nvidia" if len(choose_providers("nvidia")) > 1 else probed


class _WithQueueDepth(Device):
    """The device as the sampler sees it: every reading also carries the agent's queue depth."""

    def __init__(self, device: Device, queue_depth: Callable[[], int]) -> None:
        self._device = device
        self._queue_depth = queue_depth

    def info(self) -> DeviceInfo:
        return self._device.info()

    def read(self) -> Reading:
        reading = self._device.read()
        return replace(reading, extra={**reading.extra, "queue_depth": float(self._queue_depth())})


@dataclass(frozen=True)
class AgentStatus:
    """What GetInfo reports."""

    name: str
    version: str
    hostname: str
    device: DeviceInfo
    execution_providers: tuple[str, ...]
    telemetry_hz: float
    measured_sample_period_s: float | None
    models_available: int
    models_loaded: int
    uptime_s: float
    queue_capacity: int
    emulated_delay_mean_s: float = 0.0
    emulated_delay_jitter_s: float = 0.0
    emulated_delay_model: str = ""


@dataclass(frozen=True)
class ModelListing:
    """One repository folder as ListModels reports it."""

    name: str
    spec: ModelSpec | None
    loaded: bool
    error: str
    file_bytes: int


class Agent:
    """A running node agent (without its gRPC server: see :mod:`node_agent.server`)."""

    def __init__(self, config: AgentConfig, *, device: Device | None = None) -> None:
        self.config = config
        self.name = config.name
        self.repository = ModelRepository(Path(config.models))
        self.engine = Engine(
            self.repository,
            device_kind=config.device if config.device != "auto" else "cpu",
            intra_op_threads=config.intra_op_threads,
            queue_capacity=config.queue_capacity,
        )
        self.device = device or probe_device(
            config.device, sim_profile=config.sim_profile, load_fn=self.engine.busy_fraction
        )
        self._device_info = self.device.info()
        self.engine.device_kind = _execution_kind(config.device, str(self._device_info.kind))
        self.telemetry_log = TelemetryLog(capacity=config.telemetry_capacity)
        self.sampler = TelemetrySampler(
            _WithQueueDepth(self.device, self.engine.queue_depth), config.telemetry_hz, self.telemetry_log
        )
        self.energy = EnergyMeter(self.device, self.telemetry_log)
        self.started_monotonic_s = time.monotonic()
        self.closing = False
        self.ready = False
        self._load_errors: dict[str, str] = {}  # model -> why its last load failed
        self._hostname = socket.gethostname()
        self.emulated_delay = EmulatedDelay(
            config.emulated_delay_ms, config.emulated_delay_jitter_ms, config.emulated_delay_seed
        )

    def start(self) -> None:
        """Start sampling and load the preloaded models (blocking)."""
        self.sampler.start()
        for name in self.config.preload:
            self.engine.load(name)
        self.ready = True

    def close(self) -> None:
        """Stop sampling, fail queued requests, free the models; wakes telemetry streams."""
        self.closing = True
        self.ready = False
        self.sampler.stop()
        self.engine.close()
        self.device.close()

    # --- repository ---------------------------------------------------------------------------

    def spec(self, name: str) -> ModelSpec:
        """The model's spec; raises ModelNotFound (also for names outside the repository)."""
        return self.repository.get(name)

    def is_loaded(self, name: str) -> bool:
        return name in self.engine.loaded()

    def list_models(self) -> list[ModelListing]:
        loaded = self.engine.loaded()
        listings = []
        for entry in self.repository.list():
            files = entry.spec.files.values() if entry.spec else ()
            listings.append(
                ModelListing(
                    name=entry.name,
                    spec=entry.spec,
                    loaded=entry.name in loaded,
                    error=entry.error or self._load_errors.get(entry.name, ""),
                    file_bytes=sum(p.stat().st_size for p in files if p.exists()),
                )
            )
        return listings

    async def load(self, name: str) -> tuple[LoadReport, bool]:
        """Load a model off the event loop; returns its load report and whether it was loaded already."""
        already = self.is_loaded(name)
        try:
            report = await asyncio.get_running_loop().run_in_executor(None, self.engine.load, name)
        except ModelLoadError as exc:
            self._load_errors[name] = str(exc)
            raise
        self._load_errors.pop(name, None)
        return report, already

    async def unload(self, name: str) -> int:
        """Unload a model; returns the freed memory in bytes (RSS delta)."""
        return await asyncio.get_running_loop().run_in_executor(None, self.engine.unload, name)

    # --- generation ---------------------------------------------------------------------------

    def resolve(self, request: GenerationRequest) -> GenerateParams:
        """Apply the model's defaults and validate; raises InvalidArgument naming the field."""
        spec = self.spec(request.model)
        params = GenerateParams(
            labels=request.labels,
            steps=spec.default_steps if request.steps is None else request.steps,
            seed=request.seed,
            guidance=spec.default_guidance if request.guidance is None else request.guidance,
            scheduler=request.scheduler or spec.default_scheduler,
            eta=request.eta,
        )
        self.engine.validate(request.model, params)
        return params

    async def generate(self, request: GenerationRequest, *, deadline_monotonic_s: float | None) -> MeasuredGeneration:
        """Queue a generation on the model's worker and wait for it, measuring its window.

        A cancelled RPC (the client went away) stops the denoising loop at the next step.

        With an emulated WAN delay configured, one delay is drawn per valid request and the result
        is held back by it on the event loop (``asyncio.sleep``: the model's worker is free
        meanwhile). A request whose deadline falls before the delay could end fails with
        DeadlineExceeded: before it is queued when even an instant computation would be too late,
        else when its computation ends.
        """
        received_s = time.monotonic()
        params = self.resolve(request)
        delay_s = self.emulated_delay.draw_s()
        if delay_s > 0 and deadline_monotonic_s is not None and received_s + delay_s > deadline_monotonic_s:
            raise DeadlineExceeded(
                f"the emulated WAN delay of {delay_s:.3f} s alone ends after the deadline; the request was not run"
            )
        cancel = threading.Event()
        future = self.engine.submit(
            request.model,
            params,
            deadline_monotonic_s=deadline_monotonic_s,
            cancelled=cancel.is_set,
            instrument=self.energy,
        )
        try:
            result = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            cancel.set()
            raise
        window = result.instrument_result
        peak_mem_bytes, peak_mem_source = window.peak_mem_bytes, window.peak_mem_source
        if self._device_info.kind == "nvidia" and window.peak_device_mem_used_bytes is not None:
            # On a discrete GPU the model's memory is on the device: report the GPU's peak.
            peak_mem_bytes, peak_mem_source = window.peak_device_mem_used_bytes, window.device_mem_source
        if delay_s > 0:
            if deadline_monotonic_s is not None and time.monotonic() + delay_s > deadline_monotonic_s:
                raise DeadlineExceeded(f"the emulated WAN delay of {delay_s:.3f} s would deliver the result late")
            await asyncio.sleep(delay_s)
        return MeasuredGeneration(
            model=request.model,
            request_id=request.request_id or uuid.uuid4().hex,
            agent=self.name,
            images=result.images,
            steps=params.steps,
            scheduler=params.scheduler,
            guidance=params.guidance,
            seed=params.seed,
            queue_time_s=result.queue_time_s,
            compute_time_s=result.compute_time_s,
            step_times_s=tuple(result.step_times_s),
            decode_time_s=result.decode_time_s,
            total_time_s=time.monotonic() - received_s,
            energy_j=window.energy_j,
            energy_source=str(window.source),
            energy_method=str(window.method),
            peak_mem_bytes=int(peak_mem_bytes or 0),
            peak_mem_source=str(peak_mem_source),
            emulated_delay_s=delay_s,
            emulated_delay_model=self.emulated_delay.label,
        )

    # --- status -------------------------------------------------------------------------------

    def status(self) -> AgentStatus:
        listings = self.repository.names()
        return AgentStatus(
            name=self.name,
            version=__version__,
            hostname=self._hostname,
            device=self._device_info,
            execution_providers=tuple(self.engine.providers),
            telemetry_hz=self.config.telemetry_hz,
            measured_sample_period_s=self.sampler.actual_period_s,
            models_available=len(listings),
            models_loaded=len(self.engine.loaded()),
            uptime_s=time.monotonic() - self.started_monotonic_s,
            queue_capacity=self.config.queue_capacity,
            emulated_delay_mean_s=self.emulated_delay.mean_ms / 1e3,
            emulated_delay_jitter_s=self.emulated_delay.jitter_ms / 1e3,
            emulated_delay_model=self.emulated_delay.label,
        )
