"""Telemetry ingest: one task per up agent, consuming its ``StreamTelemetry`` into the store.

The task resumes from the last batch's ``next_seq`` after every reconnect, so the stored sequence
numbers of an agent are consecutive unless the agent's bounded log lost samples first; those are
counted (``dropped``) and logged, never hidden. Reconnects wait with capped exponential backoff and
stop after ``max_failures`` failed streams in a row (the daemon starts a new task when the agent
comes up again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from orchestrator.agent_link import AgentLink
from orchestrator.metrics import Metrics
from orchestrator.registry import AgentEntry, Registry
from orchestrator.serde import TelemetryChunk
from orchestrator.store import Store

log = logging.getLogger(__name__)

#: First wait before a reconnect, seconds (doubled up to the configured cap).
BACKOFF_INITIAL_S = 0.1


class TelemetryIngest:
    """Consumes one agent's telemetry.

    Args:
        entry: the agent (its ``telemetry_next_seq`` is where the stream resumes).
        link: the connection to it (asked again at every reconnect: the agent may have moved).
        registry: receives the newest sample (power, memory, queue depth).
        store: receives every sample.
        metrics: rows, dropped samples, power and queue depth.
        batch_size: samples per message asked of the agent, 10..100.
        max_failures: failed streams in a row before the task ends.
        backoff_max_s: largest wait between reconnects, seconds.
    """

    def __init__(
        self,
        entry: AgentEntry,
        link: Callable[[], AgentLink],
        registry: Registry,
        store: Store,
        metrics: Metrics,
        *,
        batch_size: int,
        max_failures: int,
        backoff_max_s: float,
    ) -> None:
        self.entry = entry
        self.link = link
        self.registry = registry
        self.store = store
        self.metrics = metrics
        self.batch_size = batch_size
        self.max_failures = max_failures
        self.backoff_max_s = backoff_max_s
        self.reconnects = 0

    async def run(self) -> None:
        """Stream until cancelled (the agent went down, or the daemon stops) or too many failures."""
        name = self.entry.name
        failures, wait_s = 0, BACKOFF_INITIAL_S
        while True:
            try:
                async for chunk in self.link().telemetry(self.entry.telemetry_next_seq, self.batch_size):
                    self._take(chunk)
                    failures, wait_s = 0, BACKOFF_INITIAL_S
                reason = "stream ended"
            except grpc.aio.AioRpcError as exc:
                reason = f"{exc.code().name}: {exc.details()}"
            failures += 1
            if failures >= self.max_failures:
                break
            self.reconnects += 1
            log.warning(
                "telemetry of agent %s: %s (%d/%d in a row); resuming from seq %d in %.2f s",
                name,
                reason,
                failures,
                self.max_failures,
                self.entry.telemetry_next_seq,
                wait_s,
            )
            await asyncio.sleep(wait_s)
            wait_s = min(2.0 * wait_s, self.backoff_max_s)
        log.error(
            "telemetry of agent %s stopped after %d failed streams in a row (last: %s); it restarts when the agent "
            "comes up again",
            name,
            failures,
            reason,
        )

    def _take(self, chunk: TelemetryChunk) -> None:
        name = self.entry.name
        if chunk.dropped:
            self.entry.telemetry_dropped += chunk.dropped
            self.metrics.telemetry_dropped.labels(name).inc(chunk.dropped)
            log.warning("telemetry of agent %s: %d samples had left its log before they were read", name, chunk.dropped)
        self.entry.telemetry_next_seq = chunk.next_seq
        if not chunk.rows:
            return
        self.store.add_telemetry(chunk.rows)
        self.registry.telemetry(name, chunk.rows)
        self.entry.telemetry_rows += len(chunk.rows)
        self.metrics.telemetry_rows.labels(name).inc(len(chunk.rows))
        newest = chunk.rows[-1]
        if newest.power_w is not None:
            self.metrics.power.labels(name, newest.power_source).set(newest.power_w)
        self.metrics.queue_depth.labels(name).set(newest.queue_depth)
