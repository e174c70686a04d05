"""Per-model worker: a bounded request queue and the thread that computes its requests in order.

Used by :class:`node_agent.runtime.engine.Engine`; see there for the semantics of deadlines,
cancellation and unloading.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

import numpy as np

from node_agent.runtime._busy import BusyMeter
from node_agent.runtime.errors import Cancelled, DeadlineExceeded, ModelNotLoaded
from node_agent.runtime.params import GenerateParams, GenerateResult, LoadReport
from node_agent.runtime.pipeline import DiffusionPipeline
from node_agent.runtime.repository import ModelSpec


class ComputeInstrument(Protocol):
    """Measures a request's compute window (e.g. energy); called on the worker thread.

    ``begin()`` runs right before computing starts; ``end(handle)`` right after it ends (also when
    it fails or is cancelled), with what ``begin`` returned. What ``end`` returns becomes
    ``GenerateResult.instrument_result``. An exception from either fails the request.
    """

    def begin(self) -> Any: ...

    def end(self, handle: Any) -> Any: ...


_DEADLINE, _UNLOADED, _CLIENT = "deadline exceeded", "model unloaded", "cancelled by the client"


class Request:
    """One queued request and its future."""

    __slots__ = ("cancelled", "deadline_s", "future", "instrument", "params", "submitted_s")

    def __init__(
        self,
        params: GenerateParams,
        deadline_s: float | None,
        cancelled: Callable[[], bool] | None,
        instrument: ComputeInstrument | None,
    ):
        self.params = params
        self.deadline_s = deadline_s
        self.cancelled = cancelled
        self.instrument = instrument
        self.future: Future[GenerateResult] = Future()
        self.submitted_s = time.monotonic()


class ModelWorker:
    """One loaded model: its pipeline, its bounded queue and the thread that serves it."""

    def __init__(
        self, spec: ModelSpec, pipeline: DiffusionPipeline, report: LoadReport, capacity: int, meter: BusyMeter
    ):
        self.spec, self.pipeline, self.report, self.meter = spec, pipeline, report, meter
        self.queue: queue.Queue[Request | None] = queue.Queue(maxsize=capacity)
        self.closing = threading.Event()  # set by unload/close: no new requests, queued ones fail
        self.cancel_running = threading.Event()
        self.busy = False
        self.served = self.failed = 0
        self._count_lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, name=f"engine-{spec.name}", daemon=True)

    def _serve(self) -> None:
        while (req := self.queue.get()) is not None:
            if self.closing.is_set():
                self._fail(req, ModelNotLoaded(f"model {self.spec.name!r} unloaded while queued"))
                continue
            try:
                self._execute(req)
            except Exception as exc:  # never let the worker die; fail that request only
                self._fail(req, exc)

    def _fail(self, req: Request, exc: BaseException) -> None:
        if not req.future.done() and (req.future.running() or req.future.set_running_or_notify_cancel()):
            req.future.set_exception(exc)
        with self._count_lock:
            self.failed += 1

    def fail_queued(self, reason: str) -> None:
        """Fail every waiting request (the caller has set ``closing``, so none can be added)."""
        while True:
            try:
                req = self.queue.get_nowait()
            except queue.Empty:
                return
            if req is not None:
                self._fail(req, ModelNotLoaded(f"model {self.spec.name!r} {reason}"))

    def _execute(self, req: Request) -> None:
        if not req.future.set_running_or_notify_cancel():
            return  # Future.cancel() while queued
        started_s = time.monotonic()
        params, name = req.params, self.spec.name
        queue_time_s = started_s - req.submitted_s
        if req.deadline_s is not None and started_s >= req.deadline_s:
            raise DeadlineExceeded(f"deadline passed while queued ({queue_time_s:.3f} s in the queue)")
        if req.cancelled is not None and req.cancelled():
            raise Cancelled(f"{_CLIENT} while queued")

        def should_stop() -> str | None:
            if self.cancel_running.is_set():
                return _UNLOADED
            if req.deadline_s is not None and time.monotonic() >= req.deadline_s:
                return _DEADLINE
            return _CLIENT if req.cancelled is not None and req.cancelled() else None

        handle = req.instrument.begin() if req.instrument is not None else None
        self.busy, token = True, self.meter.start()
        try:
            out = self.pipeline.generate(
                np.asarray(params.labels, dtype=np.int64),
                params.steps,
                params.seed,
                float(params.guidance),
                params.scheduler,
                float(params.eta),
                should_stop=should_stop,
            )
        except Cancelled as exc:
            if exc.reason == _DEADLINE:
                raise DeadlineExceeded(f"deadline passed while computing {name!r}") from None
            if exc.reason == _UNLOADED:
                raise ModelNotLoaded(f"model {name!r} unloaded while running") from None
            raise
        finally:
            self.busy = False
            self.meter.end(token)
            finished_s = time.monotonic()
            measured = req.instrument.end(handle) if req.instrument is not None else None
        req.future.set_result(
            GenerateResult(
                model=name,
                images=out.images,
                queue_time_s=queue_time_s,
                compute_time_s=finished_s - started_s,
                step_times_s=out.step_times_s,
                denoise_time_s=out.denoise_time_s,
                decode_time_s=out.decode_time_s,
                scheduler_overhead_s=out.scheduler_overhead_s,
                started_monotonic_s=started_s,
                finished_monotonic_s=finished_s,
                steps=params.steps,
                scheduler=params.scheduler,
                guidance=float(params.guidance),
                seed=params.seed,
                eta=float(params.eta),
                instrument_result=measured,
            )
        )
        with self._count_lock:
            self.served += 1

    def close(self, cancel_running: bool) -> None:
        """Refuse new requests (queued ones fail when dequeued); optionally stop the running one."""
        self.closing.set()
        if cancel_running:
            self.cancel_running.set()

    def stop(self, reason: str, timeout_s: float | None) -> None:
        """After :meth:`close`: fail the queued requests now, end the thread, wait for it."""
        self.fail_queued(reason)
        self.queue.put_nowait(None)  # the queue is empty now and nobody else can add to it
        self.thread.join(timeout_s)
