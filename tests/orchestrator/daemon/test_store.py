"""The run store: bounded queue (full = counted and logged), flush, WAL reads, a clean close."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path

from orchestrator.metrics import Metrics
from orchestrator.serde import TelemetryRow
from orchestrator.store import RequestRecord, Store


def _row(seq: int, power_w: float | None = 7.5) -> TelemetryRow:
    return TelemetryRow(
        agent="edge-a",
        seq=seq,
        t_unix_s=1000.0 + seq,
        power_w=power_w,
        power_source="modeled" if power_w else "unavailable",
        energy_j=None,
        energy_source="unavailable",
        mem_used_bytes=5,
        mem_total_bytes=10,
        mem_source="psutil",
        util_pct=None,
        clock_mhz=None,
        queue_depth=1,
    )


def _query(path: Path, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


def test_a_full_queue_counts_and_logs_what_it_drops(tmp_path: Path, caplog) -> None:
    store = Store(tmp_path, capacity=10, batch_rows=4, config={"heartbeat_s": 1.0}, version="9.9")
    caplog.set_level(logging.ERROR, logger="orchestrator.store")
    store.add_telemetry([_row(seq) for seq in range(1, 16)])  # the writer is not running yet: 10 fit
    assert store.queue_depth == 10 and store.dropped == {"telemetry": 5}
    assert len(caplog.records) == 1  # the first dropped row is logged, then every 1000th
    assert "store queue full (10 rows)" in caplog.records[0].getMessage()
    store.start()
    assert store.flush()
    assert store.written == {"telemetry": 10} and store.queue_depth == 0
    # WAL mode: the file can be read while the writer holds it open
    assert _query(store.path, "PRAGMA journal_mode") == [("wal",)]
    assert [s for (s,) in _query(store.path, "SELECT seq FROM telemetry ORDER BY seq")] == list(range(1, 11))
    metrics = Metrics(store).render().decode()
    assert 'edgetb_store_rows_dropped_total{table="telemetry"} 5.0' in metrics
    assert 'edgetb_store_rows_written_total{table="telemetry"} 10.0' in metrics
    store.close()


def test_close_writes_everything_and_leaves_a_checkpointed_file(tmp_path: Path) -> None:
    store = Store(tmp_path / "runs", capacity=1000, batch_rows=7)
    store.start()
    store.add_telemetry([_row(1), _row(2, power_w=None), _row(2)])  # a resent sample is not a second row
    store.add_request(
        RequestRecord(
            request_id="r1",
            model="tiny",
            label=3,
            steps_requested=None,
            quality_floor=0.9,
            deadline_s=5.0,
            seed=1,
            agent=None,
            attempts=0,
            loaded_model=False,
            submitted_unix_s=1.0,
            finished_unix_s=2.0,
            outcome="unavailable",
            error="no agent is up",
            latency_s=0.001,
        )
    )
    store.add_agent(name="edge-a", address="h:1", static=1)
    store.add_agent(name="edge-a", address="h:2", static=1)  # an upsert
    store.add_event("edge-a", "up", "registered")
    store.close()
    assert store.path.parent == tmp_path / "runs" and store.path.name == f"{store.run_id}.sqlite"
    assert not Path(f"{store.path}-wal").exists() or Path(f"{store.path}-wal").stat().st_size == 0
    assert _query(store.path, "PRAGMA integrity_check") == [("ok",)]
    assert _query(store.path, "SELECT seq, power_w, power_source FROM telemetry") == [
        (1, 7.5, "modeled"),
        (2, None, "unavailable"),
    ]
    assert _query(store.path, "SELECT request_id, outcome, agent, quality_floor FROM requests") == [
        ("r1", "unavailable", None, 0.9)
    ]
    assert _query(store.path, "SELECT name, address FROM agents") == [("edge-a", "h:2")]
    assert _query(store.path, "SELECT agent, event FROM agent_events") == [("edge-a", "up")]
    (run,) = _query(store.path, "SELECT run_id, finished_unix_s >= started_unix_s FROM runs")
    assert run == (store.run_id, 1)
    assert (
        _query(store.path, "SELECT COUNT(*) FROM decisions")
        == _query(store.path, "SELECT COUNT(*) FROM rewards")
        == [(0,)]
    )
    assert store.dropped == {} and store.failed == {}
