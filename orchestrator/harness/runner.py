"""Issues a scenario's queries against a target and records every one of them.

- ``single-stream``: one query at a time, the next issued when the previous completes.
- ``server``: Poisson arrivals at ``rate_qps``, issued on schedule whatever the completions; at most
  ``max_in_flight`` queries outstanding, an arrival beyond that is recorded ``DROPPED``. Latency
  is measured from the scheduled arrival (so a late issue counts against the system, as in LoadGen).
- ``offline``: queries issued as fast as the in-flight window of ``max_in_flight`` lets them.

Every run stops issuing when its minimum duration and query count are both met, or at a hard cap,
then waits for the outstanding queries (each bounded by its gRPC deadline). Every issued query
ends as exactly one record: ``OK``, a gRPC status code name, ``BAD_RESPONSE``, ``CLIENT_ERROR`` or
``DROPPED``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc

from orchestrator.harness.scenarios import OFFLINE, SCENARIOS, SERVER, SINGLE_STREAM, Limits, poisson_arrivals_s
from orchestrator.harness.scenarios import query_inputs as inputs_of
from orchestrator.harness.targets import BenchError, Reply, Target
from orchestrator.serde_kserve import BadResponse

OK = "OK"
DROPPED = "DROPPED"
BAD_RESPONSE = "BAD_RESPONSE"
CLIENT_ERROR = "CLIENT_ERROR"
#: Distinct error messages kept for the report.
MAX_ERROR_SAMPLES = 5
#: How often a waiting issuer looks at the clock and reports progress, s.
POLL_S = 0.05
#: Callback ``(issued, finished, elapsed_s)``, called from the issuing thread.
Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class BenchConfig:
    """One harness run.

    Attributes:
        scenario: ``single-stream``, ``server`` or ``offline``.
        model: model name on the target.
        steps: denoising steps per query.
        batch: images (labels) per query.
        seed: seeds the arrivals, the labels and the per-query seeds.
        rate_qps: server scenario: mean Poisson arrival rate, queries/s.
        max_in_flight: most queries outstanding at once (server and offline).
        limits: minimum and maximum duration and query count.
        windows: measurement windows for the validity check (>= 3).
        timeout_s: deadline of each query, s.
        connect_timeout_s: how long to wait for the target's channel to connect, s.
        idle_s: idle-power baseline before the run, s (0: none).
        warmup_queries: sequential queries before the run, not recorded; a failure stops the run.
        num_classes: labels are drawn from 0..num_classes-1; None: ask the target (10 if it cannot say).
    """

    scenario: str
    model: str
    steps: int
    batch: int = 1
    seed: int = 0
    rate_qps: float | None = None
    max_in_flight: int = 8
    limits: Limits = field(default_factory=lambda: Limits(10.0, 100, 600.0, 100_000))
    windows: int = 5
    timeout_s: float = 60.0
    connect_timeout_s: float = 5.0
    idle_s: float = 5.0
    warmup_queries: int = 2
    num_classes: int | None = None

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}, got '{self.scenario}'")
        if self.scenario == SERVER and (self.rate_qps is None or not 0 < self.rate_qps < float("inf")):
            raise ValueError(f"rate: the server scenario needs a rate > 0 queries/s, got {self.rate_qps}")
        for name, low, high in (
            ("steps", 1, 100_000),
            ("batch", 1, 4096),
            ("max_in_flight", 1, 1024),
            ("windows", 3, 1000),
            ("warmup_queries", 0, 1000),
            ("seed", 0, 2**63 - 1),
        ):
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"{name}: {getattr(self, name)} is outside {low}..{high}")
        if not 0 < self.timeout_s <= 3600:
            raise ValueError(f"timeout_s: {self.timeout_s} is outside (0, 3600]")
        if not 0 < self.connect_timeout_s <= 600:
            raise ValueError(f"connect_timeout_s: {self.connect_timeout_s} is outside (0, 600]")
        if not 0 <= self.idle_s <= 3600:
            raise ValueError(f"idle_s: {self.idle_s} is outside [0, 3600]")
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")


@dataclass(frozen=True)
class QueryRecord:
    """What became of one issued query; times in s from the run start (None: did not happen)."""

    index: int
    scheduled_s: float
    issued_s: float | None
    done_s: float | None
    status: str
    reply: Reply | None

    @property
    def latency_s(self) -> float | None:
        """Completion minus scheduled arrival (the issue time outside the server scenario), s."""
        return None if self.done_s is None else self.done_s - self.scheduled_s


@dataclass(frozen=True)
class RunResult:
    """Every query of a run, in the order they finished, and how the run ended.

    ``duration_s`` is the measured period in seconds: from the start to the later of the stop
    decision and the last completion.
    """

    records: list[QueryRecord]
    duration_s: float
    minimums_met: bool
    errors: list[str]
    started_unix_s: float


class _Run:
    def __init__(self, config: BenchConfig, target: Target, num_classes: int, on_progress: Progress | None) -> None:
        self.config, self.target, self.num_classes = config, target, num_classes
        self.on_progress = on_progress or (lambda issued, finished, elapsed_s: None)
        self.slots = threading.BoundedSemaphore(config.max_in_flight)
        self.lock = threading.Lock()
        self.records: list[QueryRecord] = []
        self.errors: list[str] = []
        self.t0 = time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def query(self, index: int, scheduled_s: float, issued_s: float) -> None:
        labels, seed = inputs_of(self.config.seed, index, self.config.batch, self.num_classes)
        reply, status, error = None, OK, ""
        try:
            reply = self.target.infer(labels, seed, self.config.steps)
        except grpc.RpcError as exc:
            status, error = exc.code().name, f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
        except BadResponse as exc:
            status, error = BAD_RESPONSE, f"{BAD_RESPONSE}: {exc}"
        except Exception as exc:  # a client-side bug must not lose the query
            status, error = CLIENT_ERROR, f"{CLIENT_ERROR}: {type(exc).__name__}: {exc}"
        done_s = self.now()
        with self.lock:
            self.records.append(QueryRecord(index, scheduled_s, issued_s, done_s, status, reply))
            if error and error not in self.errors and len(self.errors) < MAX_ERROR_SAMPLES:
                self.errors.append(error)

    def query_in_slot(self, index: int, scheduled_s: float, issued_s: float) -> None:
        try:
            self.query(index, scheduled_s, issued_s)
        finally:
            self.slots.release()

    def progress(self, issued: int) -> None:
        self.on_progress(issued, len(self.records), self.now())

    def single_stream(self) -> tuple[float, int]:
        issued = 0
        while not self.config.limits.should_stop(self.now(), issued):
            t_s = self.now()
            self.query(issued, t_s, t_s)
            issued += 1
            self.progress(issued)
        return self.now(), issued

    def offline(self) -> tuple[float, int]:
        limits, issued = self.config.limits, 0
        with ThreadPoolExecutor(self.config.max_in_flight, thread_name_prefix="bench") as pool:
            while True:
                if not self.slots.acquire(timeout=POLL_S):
                    self.progress(issued)
                    if limits.cap_reached(self.now(), issued):
                        break
                    continue
                t_s = self.now()
                if limits.should_stop(t_s, issued):
                    self.slots.release()
                    break
                pool.submit(self.query_in_slot, issued, t_s, t_s)
                issued += 1
                self.progress(issued)
            stopped_s = self.now()
        return stopped_s, issued

    def server(self) -> tuple[float, int]:
        limits, issued, at_s = self.config.limits, 0, 0.0
        arrivals = poisson_arrivals_s(self.config.rate_qps, self.config.seed)  # type: ignore[arg-type]
        with ThreadPoolExecutor(self.config.max_in_flight, thread_name_prefix="bench") as pool:
            for at_s in arrivals:
                if limits.should_stop(at_s, issued):
                    break
                wait_s = at_s - self.now()
                while wait_s > 0:
                    time.sleep(min(wait_s, POLL_S))
                    self.progress(issued)
                    wait_s = at_s - self.now()
                if self.slots.acquire(blocking=False):
                    pool.submit(self.query_in_slot, issued, at_s, self.now())
                else:
                    with self.lock:
                        self.records.append(QueryRecord(issued, at_s, None, None, DROPPED, None))
                issued += 1
                self.progress(issued)
        return at_s, issued


def warm_up(config: BenchConfig, target: Target, num_classes: int) -> None:
    """Run the warm-up queries one after the other.

    Raises:
        BenchError: a warm-up query failed (bad steps or batch for this model, ...); names the error.
    """
    for index in range(config.warmup_queries):
        labels, seed = inputs_of(config.seed, index, config.batch, num_classes, warmup=True)
        try:
            target.infer(labels, seed, config.steps)
        except grpc.RpcError as exc:
            raise BenchError(
                f"warm-up query failed: {exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
            ) from None
        except BadResponse as exc:
            raise BenchError(f"warm-up query: bad response: {exc}") from None


def run_queries(
    config: BenchConfig, target: Target, num_classes: int, on_progress: Progress | None = None
) -> RunResult:
    """Warm up, then run the configured scenario against an opened target.

    Args:
        config: the run.
        target: an opened target (``open`` called).
        num_classes: labels are drawn from ``0 .. num_classes - 1``.
        on_progress: called with (issued, finished, elapsed_s) from the issuing thread.
    """
    warm_up(config, target, num_classes)
    started_unix_s = time.time()
    run = _Run(config, target, num_classes, on_progress)
    scenario = {SINGLE_STREAM: run.single_stream, SERVER: run.server, OFFLINE: run.offline}[config.scenario]
    stopped_s, issued = scenario()
    run.progress(issued)
    done = [r.done_s for r in run.records if r.done_s is not None]
    return RunResult(
        records=sorted(run.records, key=lambda r: (r.done_s is None, r.done_s or r.scheduled_s)),
        duration_s=max([*done, stopped_s]),  # the measured period: to the stop decision or the last completion
        minimums_met=config.limits.minimums_met(stopped_s, issued),
        errors=run.errors,
        started_unix_s=started_unix_s,
    )
