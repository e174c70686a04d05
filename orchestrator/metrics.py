"""The daemon's Prometheus metrics, served on ``metrics_listen`` at ``/metrics``.

Each daemon has its own registry (several daemons in one process do not collide). Values that the
store owns (its queue depth, rows written and dropped) are read at scrape time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from orchestrator.store import Store

log = logging.getLogger(__name__)

#: Request latency buckets, seconds: milliseconds (tiny models) to minutes (large ones on CPUs).
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

#: Utility buckets: quality is in [0, 1]; latency and energy terms push it below 0.
UTILITY_BUCKETS = (-5.0, -2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 0.9, 1.0)

#: Policy decision time buckets, seconds: 10 µs to 1 s (the goal boundary 50 ms is one of them).
DECISION_BUCKETS_S = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class _StoreCollector(Collector):
    """The store's own counters, read when Prometheus scrapes."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily(
            "edgetb_store_queue_depth", "Rows waiting for the SQLite writer", self._store.queue_depth
        )
        for name, help_text, counts in (
            ("edgetb_store_rows_written", "Rows committed to the run store", self._store.written),
            ("edgetb_store_rows_dropped", "Rows dropped because the store queue was full", self._store.dropped),
            ("edgetb_store_rows_failed", "Rows SQLite refused", self._store.failed),
        ):
            family = CounterMetricFamily(name, help_text, labels=["table"])
            for table, count in sorted(counts.items()):
                family.add_metric([table], count)
            yield family


class Metrics:
    """All the daemon's metrics, on one registry.

    Attributes:
        request_latency: Submit receipt to answer, seconds, by agent and model (served requests).
        requests: requests by outcome ("ok" or a gRPC status name in lower case).
        energy: device energy of served requests, joules, by agent and energy source.
        power: latest power sample, watts, by agent and power source.
        queue_depth: requests queued or running on each agent.
        agents_up: agents whose state is up.
        telemetry_rows: telemetry samples ingested, by agent.
        telemetry_dropped: samples an agent's bounded log had lost before the daemon read them.
        model_loads: models the daemon loaded on an agent to serve a request.
        retries: requests retried on another agent.
        decisions: policy decisions, by policy and kind (``allocation``, ``cache-load``, ``cache-unload``).
        utility: utility of served requests (quality − weighted latency and energy), by allocation policy.
        cache_op_seconds: measured time of the policy loop's LoadModel/UnloadModel calls, seconds.
        decision_seconds: compute time of a policy decision, seconds, by kind (``frame-plan``: the
            caching policy's plan over the cluster view; ``allocation``: one request's allocation),
            without the RPCs that apply it.
        slots_missed: slots the policy loop's clock skipped because it ran late.
    """

    def __init__(self, store: Store | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.request_latency = Histogram(
            "edgetb_request_latency_seconds",
            "Submit receipt to answer, served requests",
            ["agent", "model"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.requests = Counter("edgetb_requests", "Submitted requests by outcome", ["outcome"], registry=r)
        self.energy = Counter(
            "edgetb_request_energy_joules", "Device energy of served requests", ["agent", "source"], registry=r
        )
        self.power = Gauge(
            "edgetb_agent_power_watts", "Latest power sample of an agent", ["agent", "source"], registry=r
        )
        self.queue_depth = Gauge(
            "edgetb_agent_queue_depth", "Requests queued or running on an agent", ["agent"], registry=r
        )
        self.agents_up = Gauge("edgetb_agents_up", "Agents whose state is up", registry=r)
        self.telemetry_rows = Counter(
            "edgetb_telemetry_rows_ingested", "Telemetry samples ingested", ["agent"], registry=r
        )
        self.telemetry_dropped = Counter(
            "edgetb_telemetry_samples_dropped",
            "Samples lost from an agent's bounded log before ingest",
            ["agent"],
            registry=r,
        )
        self.model_loads = Counter(
            "edgetb_model_loads", "Models loaded on an agent to serve a request", ["agent", "model"], registry=r
        )
        self.retries = Counter("edgetb_request_retries", "Requests retried on another agent", registry=r)
        self.decisions = Counter(
            "edgetb_policy_decisions", "Policy decisions by policy and kind", ["policy", "kind"], registry=r
        )
        self.utility = Histogram(
            "edgetb_request_utility", "Utility of served requests", ["policy"], buckets=UTILITY_BUCKETS, registry=r
        )
        self.cache_op_seconds = Histogram(
            "edgetb_cache_op_seconds",
            "Measured time of caching LoadModel/UnloadModel calls",
            ["agent", "kind"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.decision_seconds = Histogram(
            "edgetb_decision_seconds",
            "Compute time of a policy decision by kind (frame-plan, allocation)",
            ["kind"],
            buckets=DECISION_BUCKETS_S,
            registry=r,
        )
        self.slots_missed = Counter(
            "edgetb_slots_missed", "Slots the policy clock skipped because it ran late", registry=r
        )
        if store is not None:
            r.register(_StoreCollector(store))
        self._server: WSGIServer | None = None

    def render(self) -> bytes:
        """The text exposition format, as ``/metrics`` serves it."""
        return generate_latest(self.registry)

    def serve(self, listen: str) -> int:
        """Serve ``/metrics`` on HOST:PORT (port 0 picks a free one); returns the bound port."""
        host, _, port = listen.rpartition(":")
        self._server, _ = start_http_server(int(port), addr=host.strip("[]"), registry=self.registry)
        bound = int(self._server.server_port)
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
