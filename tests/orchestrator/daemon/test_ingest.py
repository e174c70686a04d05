"""Telemetry ingest against a scripted stream: resume from next_seq, dropped samples counted,
capped backoff, a bounded number of failed streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from pathlib import Path

import grpc

from orchestrator import ingest as ingest_module
from orchestrator.ingest import TelemetryIngest
from orchestrator.metrics import Metrics
from orchestrator.registry import Registry
from orchestrator.serde import TelemetryChunk, TelemetryRow
from orchestrator.store import Store


def _chunk(seqs: range, next_seq: int, dropped: int = 0) -> TelemetryChunk:
    rows = tuple(
        TelemetryRow(
            agent="edge-a",
            seq=s,
            t_unix_s=float(s),
            power_w=5.0 + s,
            power_source="modeled",
            energy_j=None,
            energy_source="unavailable",
            mem_used_bytes=1,
            mem_total_bytes=2,
            mem_source="modeled",
            util_pct=None,
            clock_mhz=None,
            queue_depth=s % 3,
        )
        for s in seqs
    )
    return TelemetryChunk(agent="edge-a", rows=rows, next_seq=next_seq, dropped=dropped)


def _unavailable() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "gone")


class ScriptedLink:
    """Each call of ``telemetry`` plays the next script entry: chunks, then an error or the end."""

    def __init__(self) -> None:
        self.from_seqs: list[int] = []
        self.script = [
            ([_chunk(range(1, 4), 4)], _unavailable()),
            ([_chunk(range(10, 13), 13, dropped=6)], None),  # the agent's log had lost 4..9; then the stream ends
            ([], _unavailable()),
            ([], _unavailable()),
        ]

    async def telemetry(self, from_seq: int, batch_size: int):
        self.from_seqs.append(from_seq)
        chunks, error = self.script.pop(0) if self.script else ([], _unavailable())
        for chunk in chunks:
            yield chunk
        if error is not None:
            raise error


def test_ingest_resumes_counts_drops_and_gives_up_after_bounded_failures(tmp_path: Path, caplog, monkeypatch) -> None:
    monkeypatch.setattr(ingest_module, "BACKOFF_INITIAL_S", 0.01)
    caplog.set_level(logging.WARNING, logger="orchestrator.ingest")
    store = Store(tmp_path, capacity=100, batch_rows=10)
    store.start()
    metrics = Metrics(store)
    registry = Registry(heartbeat_s=1.0, max_agents=4, static=[("edge-a", "h:1")])
    entry = registry.entries["edge-a"]
    link = ScriptedLink()
    ingest = TelemetryIngest(
        entry, lambda: link, registry, store, metrics, batch_size=10, max_failures=3, backoff_max_s=0.02
    )  # type: ignore[arg-type]
    asyncio.run(asyncio.wait_for(ingest.run(), timeout=10))

    assert link.from_seqs == [0, 4, 13, 13]  # resumed from each batch's next_seq
    assert entry.telemetry_next_seq == 13 and entry.telemetry_rows == 6 and entry.telemetry_dropped == 6
    assert entry.power_w == 17.0 and entry.queue_depth == 12 % 3  # the newest sample
    waits = [r.getMessage().rpartition(" in ")[2] for r in caplog.records if r.levelno == logging.WARNING]
    assert [w for w in waits if w.endswith(" s")] == ["0.01 s", "0.01 s", "0.02 s"]  # reset, doubled, capped
    assert any("6 samples had left its log" in r.getMessage() for r in caplog.records)
    assert "stopped after 3 failed streams" in caplog.records[-1].getMessage()
    text = metrics.render().decode()
    assert 'edgetb_telemetry_samples_dropped_total{agent="edge-a"} 6.0' in text
    assert 'edgetb_telemetry_rows_ingested_total{agent="edge-a"} 6.0' in text
    assert 'edgetb_agent_power_watts{agent="edge-a",source="modeled"} 17.0' in text
    store.close()
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        assert [s for (s,) in db.execute("SELECT seq FROM telemetry ORDER BY seq")] == [1, 2, 3, 10, 11, 12]


def test_ingest_stops_at_once_with_one_allowed_failure(tmp_path: Path) -> None:
    store = Store(tmp_path, capacity=100, batch_rows=10)
    registry = Registry(heartbeat_s=1.0, max_agents=4, static=[("edge-a", "h:1")])
    link = ScriptedLink()
    link.script = [([], _unavailable())]
    ingest = TelemetryIngest(
        registry.entries["edge-a"],
        lambda: link,
        registry,
        store,
        Metrics(),
        batch_size=10,
        max_failures=1,
        backoff_max_s=0.01,
    )  # type: ignore[arg-type]
    asyncio.run(asyncio.wait_for(ingest.run(), timeout=10))
    assert link.from_seqs == [0] and ingest.reconnects == 0
