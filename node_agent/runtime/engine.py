"""Execution engine: loaded models, one worker thread and one bounded queue per model.

Threading: ``submit`` never blocks (the gRPC servicers call it from the asyncio event loop); it
validates, then puts the request in the model's bounded queue or raises :class:`QueueFull`. Each
loaded model has one worker thread that computes its requests one at a time, so two models compute
in parallel and one model's requests run in submission order. Results come back as
``concurrent.futures.Future`` (wrap with ``asyncio.wrap_future``). ``load``/``unload`` block for the
session build / drain and are serialised by a lock; run them off the event loop.

Stopping: the deadline and the ``cancelled`` callback are checked when a request is dequeued and
between denoising steps. ``Future.cancel()`` works while the request is still queued.

Unload: queued requests fail at once with ``ModelNotLoaded("... unloaded while queued")``. The
running request, by default, finishes (``unload`` waits for it); with ``cancel_running=True`` it is
stopped at the next step boundary and fails with ``ModelNotLoaded("... unloaded while running")``.
"""

from __future__ import annotations

import gc
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np
import psutil

from node_agent.runtime._busy import BusyMeter
from node_agent.runtime.errors import (
    Cancelled,
    DeadlineExceeded,
    InferenceError,
    InvalidArgument,
    InvalidModelSpec,
    ModelLoadError,
    ModelNotFound,
    ModelNotLoaded,
    QueueFull,
)
from node_agent.runtime.params import (
    GenerateParams,
    GenerateResult,
    LoadedInfo,
    LoadReport,
    validate_params,
)
from node_agent.runtime.pipeline import DiffusionPipeline
from node_agent.runtime.repository import ModelRepository, ModelSpec
from node_agent.runtime.session import choose_providers, create_session
from node_agent.runtime.worker import ComputeInstrument, ModelWorker, Request

__all__ = [
    "Cancelled",
    "ComputeInstrument",
    "DeadlineExceeded",
    "Engine",
    "GenerateParams",
    "GenerateResult",
    "InferenceError",
    "InvalidArgument",
    "LoadReport",
    "LoadedInfo",
    "ModelLoadError",
    "ModelNotFound",
    "ModelNotLoaded",
    "QueueFull",
]


MAX_QUEUE_CAPACITY = 10_000


class Engine:
    """Loaded models and their request queues.

    Args:
        repository: Where models are loaded from (nothing outside it is read).
        device_kind: Device backend kind, for the execution provider choice (``cpu``, ``nvidia``,
            ``jetson``, ``simulated``).
        intra_op_threads: ONNX Runtime threads inside one operator (0 = its default).
        queue_capacity: Most requests waiting per model (the running one not counted).
        max_batch_cap: Engine-wide cap on images per request, on top of each model's ``max_batch``.
        warmup: Run each model once at load (batch 2, one step) so that the first request does not
            pay for ONNX Runtime's lazy initialisation; it is included in ``load_time_s``.
        busy_window_s: Window of :meth:`busy_fraction`, seconds.
    """

    def __init__(
        self,
        repository: ModelRepository,
        *,
        device_kind: str = "cpu",
        intra_op_threads: int = 0,
        queue_capacity: int = 8,
        max_batch_cap: int | None = None,
        warmup: bool = True,
        busy_window_s: float = 10.0,
    ) -> None:
        if not 1 <= queue_capacity <= MAX_QUEUE_CAPACITY:
            raise ValueError(f"queue_capacity must be in 1..{MAX_QUEUE_CAPACITY}, got {queue_capacity}")
        if max_batch_cap is not None and max_batch_cap < 1:
            raise ValueError(f"max_batch_cap must be >= 1, got {max_batch_cap}")
        if intra_op_threads < 0:
            raise ValueError(f"intra_op_threads must be >= 0, got {intra_op_threads}")
        self.repository = repository
        self.device_kind = device_kind
        self.intra_op_threads = intra_op_threads
        self.queue_capacity = queue_capacity
        self.max_batch_cap = max_batch_cap
        self.warmup = warmup
        self._meter = BusyMeter(busy_window_s)
        self._workers: dict[str, ModelWorker] = {}
        self._lock = threading.Lock()  # guards _workers and enqueueing
        self._load_lock = threading.Lock()  # serialises load/unload/close
        self._closed = False
        self._process = psutil.Process()

    @property
    def providers(self) -> list[str]:
        """Execution providers new loads use, best first (follows ``device_kind``, which may be changed)."""
        return choose_providers(self.device_kind)

    def _worker(self, name: str) -> ModelWorker:
        with self._lock:
            worker = self._workers.get(name)
        if worker is None:
            raise ModelNotLoaded(f"model {name!r} is not loaded")
        return worker

    def validate(self, name: str, params: GenerateParams) -> ModelSpec:
        """Check a request against a model (the loaded spec, else the repository's).

        Raises:
            InvalidArgument: A field is out of range; ``field`` names it.
            ModelNotFound: No such model.
            InvalidModelSpec: The model is not loaded and its model.toml is broken.
        """
        with self._lock:
            worker = self._workers.get(name)
        spec = worker.spec if worker is not None else self.repository.get(name)
        validate_params(spec, params, self.max_batch_cap)
        return spec

    def _rss_bytes(self) -> int:
        gc.collect()
        return int(self._process.memory_info().rss)

    def load(self, name: str) -> LoadReport:
        """Load a model (idempotent: loading a loaded model returns its first report). Thread-safe.

        Raises:
            ModelNotFound: No such model in the repository.
            ModelLoadError: Broken model.toml, missing/corrupt ONNX, or contract mismatch; other
                loaded models are not affected.
        """
        with self._load_lock:
            if self._closed:
                raise ModelLoadError("engine is closed")
            with self._lock:
                if name in self._workers:
                    return self._workers[name].report
            try:
                spec = self.repository.get(name)
            except InvalidModelSpec as exc:
                raise ModelLoadError(f"model {name!r}: {exc}") from exc
            rss_before_bytes = self._rss_bytes()
            start_s = time.perf_counter()
            roles = ["denoiser", "decoder"] if spec.kind == "latent" else ["denoiser"]
            sessions = {role: create_session(spec, role, self.providers, self.intra_op_threads) for role in roles}
            pipeline = DiffusionPipeline(spec, sessions)
            if self.warmup:
                try:
                    pipeline.generate(np.zeros(1, dtype=np.int64), 1, 0, 2.0, "ddim")
                except InferenceError as exc:
                    raise ModelLoadError(f"model {name!r}: warm-up run failed: {exc}") from exc
            load_time_s = time.perf_counter() - start_s
            report = LoadReport(
                name=name,
                load_time_s=load_time_s,
                mem_delta_bytes=self._rss_bytes() - rss_before_bytes,
                providers=list(sessions["denoiser"].get_providers()),
                loaded_monotonic_s=time.monotonic(),
            )
            worker = ModelWorker(spec, pipeline, report, self.queue_capacity, self._meter)
            worker.thread.start()
            with self._lock:
                self._workers[name] = worker
            return report

    def unload(self, name: str, *, cancel_running: bool = False, timeout_s: float | None = None) -> int:
        """Unload a model; queued requests fail with ModelNotLoaded ("unloaded while queued").

        Args:
            name: Model name.
            cancel_running: Stop the running request at its next step boundary (it fails with
                ModelNotLoaded "unloaded while running") instead of letting it finish.
            timeout_s: Longest wait for the running request (None = as long as it takes).

        Other load/unload calls wait meanwhile (they share one lock); run it off the event loop.

        Returns:
            Freed memory estimate: process RSS before minus after, bytes (>= 0; noisy: allocators
            may keep freed pages, and other models compute meanwhile).

        Raises:
            ModelNotLoaded: The model is not loaded.
        """
        with self._load_lock:
            with self._lock:
                worker = self._workers.pop(name, None)
                if worker is None:
                    raise ModelNotLoaded(f"model {name!r} is not loaded")
                worker.close(cancel_running)
            rss_before_bytes = self._rss_bytes()
            worker.stop("unloaded while queued", timeout_s)
            del worker
            return max(0, rss_before_bytes - self._rss_bytes())

    def loaded(self) -> dict[str, LoadedInfo]:
        """Loaded models by name, with queue depth, counters and whether each is computing."""
        with self._lock:
            workers = dict(self._workers)
        return {
            name: LoadedInfo(
                report=w.report,
                spec=w.spec,
                queue_depth=w.queue.qsize(),
                queue_capacity=self.queue_capacity,
                requests_served=w.served,
                requests_failed=w.failed,
                busy=w.busy,
            )
            for name, w in workers.items()
        }

    def submit(
        self,
        name: str,
        params: GenerateParams,
        *,
        deadline_monotonic_s: float | None = None,
        cancelled: Callable[[], bool] | None = None,
        instrument: ComputeInstrument | None = None,
    ) -> Future[GenerateResult]:
        """Queue a request without blocking.

        Args:
            name: Loaded model.
            params: The request.
            deadline_monotonic_s: Absolute deadline on the ``time.monotonic()`` clock, or None.
            cancelled: Polled from the worker thread (must be thread-safe); True stops the request.
            instrument: Measures the compute window (see :class:`ComputeInstrument`).

        Returns:
            A future resolving to a GenerateResult, or failing with DeadlineExceeded, Cancelled,
            ModelNotLoaded (unloaded meanwhile) or InferenceError.

        Raises:
            ModelNotLoaded: The model is not loaded.
            InvalidArgument: A parameter is out of range.
            QueueFull: The model's queue is full.
        """
        worker = self._worker(name)
        validate_params(worker.spec, params, self.max_batch_cap)
        req = Request(params, deadline_monotonic_s, cancelled, instrument)
        if deadline_monotonic_s is not None and req.submitted_s >= deadline_monotonic_s:
            req.future.set_running_or_notify_cancel()
            req.future.set_exception(DeadlineExceeded("deadline passed before the request was queued"))
            return req.future
        with self._lock:
            if worker.closing.is_set():
                raise ModelNotLoaded(f"model {name!r} is not loaded")
            try:
                worker.queue.put_nowait(req)
            except queue.Full:
                raise QueueFull(f"model {name!r}: queue full ({self.queue_capacity} requests waiting)") from None
        return req.future

    def queue_depth(self, name: str | None = None) -> int:
        """Requests waiting (not running) for one model, or for all loaded models when ``name`` is None."""
        if name is not None:
            return self._worker(name).queue.qsize()
        with self._lock:
            workers = list(self._workers.values())
        return sum(w.queue.qsize() for w in workers)

    def busy_fraction(self) -> float:
        """Share of the recent window (``busy_window_s``) during which any model was computing, 0..1."""
        return self._meter.fraction()

    def close(self, timeout_s: float = 5.0) -> None:
        """Unload everything: queued requests fail, running ones are cancelled. Idempotent."""
        with self._load_lock:
            self._closed = True
            with self._lock:
                workers, self._workers = list(self._workers.values()), {}
                for worker in workers:
                    worker.close(cancel_running=True)
            for worker in workers:
                worker.stop("unloaded: engine closed", timeout_s)
