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
from node_agent.config import AgentConfig, ConfigError
from node_agent.devices import Device, DeviceInfo, Reading, probe_device
from node_agent.devices.simulated import SimProfile
from node_agent.emulation import EmulatedDelay
from node_agent.generation import GenerationRequest, MeasuredGeneration
from node_agent.runtime.engine import DeadlineExceeded, Engine, GenerateParams, LoadReport, ModelLoadError
from node_agent.runtime.repository import InvalidModelSpec, ModelRepository, ModelSpec
from node_agent.runtime.session import choose_providers
from node_agent.sim_timing import SimTiming, SimTimingError, read_device_profile
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
        self.sim_timing = self._open_sim_timing()

    def _open_sim_timing(self) -> SimTiming | None:
        """Modeled compute times from model profiles: only for a simulated device from a *named* device profile."""
        if self.config.device != "simulated" or self.config.sim_profile is None:
            return None
        try:
            ref = read_device_profile(Path(self.config.sim_profile))
        except SimTimingError as exc:
            raise ConfigError(f"sim_profile: {exc}") from exc
        if ref is None:
            return None
        profile = getattr(self.device, "profile", None)  # the power the simulated device itself models
        max_power_w = profile.max_power_w if isinstance(profile, SimProfile) else ref.max_power_w
        return SimTiming(ref, max_power_w, self.config.sim_seed)

    def start(self) -> None:
        """Start sampling and load the preloaded models (blocking)."""
        self.sampler.start()
        for name in self.config.preload:
            self._load_blocking(name)
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

    def _load_blocking(self, name: str) -> LoadReport:
        """Load a model; on a named simulated device, first read its ``profile-<device>.toml`` (if any).

        Raises:
            ModelLoadError: also for a malformed model profile (the message names the file and field).
        """
        if self.sim_timing is not None and not self.is_loaded(name):
            try:
                model_dir: Path | None = self.repository.get(name).dir
            except InvalidModelSpec:
                model_dir = None  # engine.load reports it
            if model_dir is not None:
                try:
                    self.sim_timing.load(name, model_dir)
                except SimTimingError as exc:
                    raise ModelLoadError(f"model {name!r}: {exc}") from exc
        try:
            return self.engine.load(name)
        except Exception:
            if self.sim_timing is not None and not self.is_loaded(name):
                self.sim_timing.forget(name)
            raise

    async def load(self, name: str) -> tuple[LoadReport, bool]:
        """Load a model off the event loop; returns its load report and whether it was loaded already."""
        already = self.is_loaded(name)
        try:
            report = await asyncio.get_running_loop().run_in_executor(None, self._load_blocking, name)
        except ModelLoadError as exc:
            self._load_errors[name] = str(exc)
            raise
        self._load_errors.pop(name, None)
        return report, already

    async def unload(self, name: str) -> int:
        """Unload a model; returns the freed memory in bytes (RSS delta)."""
        freed = await asyncio.get_running_loop().run_in_executor(None, self.engine.unload, name)
        if self.sim_timing is not None:
            self.sim_timing.forget(name)
        return freed

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

        On a simulated device with a profile of this model (:mod:`node_agent.sim_timing`), one
        compute time is drawn per valid request, the model's worker is held after the real compute
        until that time has passed, and energy is modeled from the profile; the hold is reported as
        an emulated delay, with its label, and counts against the deadline like the WAN delay.
        """
        received_s = time.monotonic()
        params = self.resolve(request)
        draw = self.sim_timing.draw(request.model, params.steps, len(params.labels)) if self.sim_timing else None
        delay_s = self.emulated_delay.draw_s()
        ahead_s = delay_s + (draw.compute_s if draw is not None else 0.0)
        if ahead_s > 0 and deadline_monotonic_s is not None and received_s + ahead_s > deadline_monotonic_s:
            what = [f"the emulated WAN delay of {delay_s:.3f} s"] if delay_s > 0 else []
            if draw is not None:
                what.insert(0, f"the modeled compute time of {draw.compute_s:.3f} s ({draw.label})")
            raise DeadlineExceeded(f"{' plus '.join(what)} alone ends after the deadline; the request was not run")
        cancel = threading.Event()
        held = None
        if draw is not None and self.sim_timing is not None:
            held = self.sim_timing.held(
                self.energy,
                draw,
                deadline_s=deadline_monotonic_s,
                after_s=delay_s,
                stop=lambda: cancel.is_set() or self.closing,
                busy=self.engine._meter,  # the hold is busy time of the simulated device (its modeled power)
            )
        future = self.engine.submit(
            request.model,
            params,
            deadline_monotonic_s=deadline_monotonic_s,
            cancelled=cancel.is_set,
            instrument=held or self.energy,
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
        energy_j, energy_source, energy_method = window.energy_j, str(window.source), str(window.method)
        hold_s, labels = 0.0, [self.emulated_delay.label] if self.emulated_delay.label else []
        if held is not None:  # modeled by the simulated device: energy from the draw, the hold labelled
            energy_j, energy_method = held.draw.energy_j, held.draw.energy_method
            energy_source = "modeled" if energy_j is not None else "unavailable"
            hold_s = held.hold_s
            labels.insert(0, held.label)
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
            energy_j=energy_j,
            energy_source=energy_source,
            energy_method=energy_method,
            peak_mem_bytes=int(peak_mem_bytes or 0),
            peak_mem_source=str(peak_mem_source),
            emulated_delay_s=hold_s + delay_s,
            emulated_delay_model=" + ".join(labels),
        )

    # --- status -------------------------------------------------------------------------------

    def _device_status(self, names: list[str]) -> DeviceInfo:
        """The device's description; on a named simulated device, with a note on the model profiles."""
        if self.sim_timing is None:
            return self._device_info
        timed = [n for n in names if self.sim_timing.profile_path(self.repository.root / n).is_file()]
        notes = {**self._device_info.notes, "timing": self.sim_timing.note(timed)}
        return replace(self._device_info, notes=notes)

    def status(self) -> AgentStatus:
        listings = self.repository.names()
        return AgentStatus(
            name=self.name,
            version=__version__,
            hostname=self._hostname,
            device=self._device_status(listings),
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
