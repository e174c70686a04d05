"""The run store: one SQLite file per run, written by one thread through a bounded queue.

Tables: ``runs`` (this run), ``agents``, ``agent_events`` (state changes), ``telemetry`` (every
ingested sample, keyed by agent and sequence number), ``requests`` (every submitted request,
served or not), ``decisions`` and ``rewards`` (for the policies). The file is in WAL mode, so it
can be read while the daemon writes. Writers never block: a row that finds the queue full is
counted per table and logged, never dropped silently. ``close`` drains the queue, marks the run
finished and checkpoints the WAL into the main file.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.serde import TelemetryRow

log = logging.getLogger(__name__)

_COLUMNS: dict[str, tuple[str, ...]] = {
    "agents": ("name", "address", "static", "registered", "device_kind", "device_name", "mem_total_bytes",
               "power_source", "version", "models_json", "updated_unix_s"),
    "agent_events": ("t_unix_s", "agent", "event", "reason"),
    "telemetry": ("agent", "seq", "t_unix_s", "power_w", "power_source", "energy_j", "energy_source",
                  "mem_used_bytes", "mem_total_bytes", "mem_source", "util_pct", "clock_mhz", "queue_depth"),
    "requests": ("request_id", "model", "label", "steps_requested", "quality_floor", "deadline_s", "seed", "agent",
                 "attempts", "loaded_model", "submitted_unix_s", "finished_unix_s", "outcome", "error", "latency_s",
                 "agent_time_s", "queue_time_s", "compute_time_s", "energy_j", "energy_source", "steps",
                 "steps_source", "quality"),
    "decisions": ("t_unix_s", "policy", "kind", "agent", "request_id", "action_json"),
    "rewards": ("t_unix_s", "policy", "decision_id", "reward", "detail_json"),
}  # fmt: skip
_SCHEMA = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, started_unix_s REAL NOT NULL, finished_unix_s REAL,
                   version TEXT, config_json TEXT);
CREATE TABLE agents (name TEXT PRIMARY KEY, address TEXT, static INTEGER, registered INTEGER, device_kind TEXT,
                     device_name TEXT, mem_total_bytes INTEGER, power_source TEXT, version TEXT, models_json TEXT,
                     updated_unix_s REAL);
CREATE TABLE agent_events (id INTEGER PRIMARY KEY, t_unix_s REAL, agent TEXT, event TEXT, reason TEXT);
CREATE TABLE telemetry (agent TEXT NOT NULL, seq INTEGER NOT NULL, t_unix_s REAL, power_w REAL, power_source TEXT,
                        energy_j REAL, energy_source TEXT, mem_used_bytes INTEGER, mem_total_bytes INTEGER,
                        mem_source TEXT, util_pct REAL, clock_mhz REAL, queue_depth INTEGER,
                        PRIMARY KEY (agent, seq)) WITHOUT ROWID;
CREATE TABLE requests (id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, model TEXT, label INTEGER,
                       steps_requested INTEGER, quality_floor REAL, deadline_s REAL, seed INTEGER, agent TEXT,
                       attempts INTEGER, loaded_model INTEGER, submitted_unix_s REAL, finished_unix_s REAL,
                       outcome TEXT NOT NULL, error TEXT, latency_s REAL, agent_time_s REAL, queue_time_s REAL,
                       compute_time_s REAL, energy_j REAL, energy_source TEXT, steps INTEGER, steps_source TEXT,
                       quality REAL);
CREATE INDEX requests_by_id ON requests (request_id);
CREATE TABLE decisions (id INTEGER PRIMARY KEY, t_unix_s REAL, policy TEXT, kind TEXT, agent TEXT, request_id TEXT,
                        action_json TEXT);
CREATE TABLE rewards (id INTEGER PRIMARY KEY, t_unix_s REAL, policy TEXT, decision_id INTEGER, reward REAL,
                      detail_json TEXT);
"""
_VERB = {"agents": "INSERT OR REPLACE", "telemetry": "INSERT OR IGNORE"}  # a resent sample is not a new row
_INSERT = {
    table: f"{_VERB.get(table, 'INSERT')} INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    for table, cols in _COLUMNS.items()
}
_STOP = object()
#: Log a full queue at the first dropped row of a table, then every this many.
_LOG_EVERY = 1000


@dataclass(frozen=True)
class RequestRecord:
    """One submitted request and how it ended (outcome "ok" or a gRPC status name in lower case)."""

    request_id: str
    model: str
    label: int
    steps_requested: int | None
    quality_floor: float | None
    deadline_s: float
    seed: int
    agent: str | None
    attempts: int
    loaded_model: bool
    submitted_unix_s: float
    finished_unix_s: float
    outcome: str
    error: str | None = None
    latency_s: float | None = None
    agent_time_s: float | None = None
    queue_time_s: float | None = None
    compute_time_s: float | None = None
    energy_j: float | None = None
    energy_source: str | None = None
    steps: int | None = None
    steps_source: str | None = None
    quality: float | None = None


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


class Store:
    """The SQLite file of one run and its writer thread.

    Args:
        run_dir: folder of the run files (created if missing).
        capacity: rows the queue holds; beyond it rows are counted as dropped and logged.
        batch_rows: rows committed per transaction at most.
        config: the daemon's settings, kept in the ``runs`` row.
        version: the daemon's version.
    """

    def __init__(
        self, run_dir: Path, capacity: int, batch_rows: int, config: dict[str, Any] | None = None, version: str = ""
    ) -> None:
        self.run_id = new_run_id()
        self.path = Path(run_dir) / f"{self.run_id}.sqlite"
        self.batch_rows = batch_rows
        self.written: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()  # rows SQLite refused (logged with the error)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self._started_unix_s = time.time()
        self._run_row = (self.run_id, self._started_unix_s, version, json.dumps(config or {}, default=str))
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)

    def start(self) -> None:
        """Create the file and its tables and start the writer (raises the writer's error)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    # --- producers (any thread, never blocking) ---------------------------------------------

    def put(self, table: str, row: tuple[Any, ...]) -> bool:
        """Queue a row of ``table`` (values in ``_COLUMNS`` order); False if the queue was full."""
        try:
            self._queue.put_nowait((table, row))
            return True
        except queue.Full:
            self.dropped[table] += 1
            if self.dropped[table] % _LOG_EVERY == 1:
                log.error(
                    "store queue full (%d rows): %d %s rows dropped so far",
                    self._queue.maxsize,
                    self.dropped[table],
                    table,
                )
            return False

    def add_telemetry(self, rows: list[TelemetryRow] | tuple[TelemetryRow, ...]) -> None:
        cols = _COLUMNS["telemetry"]
        for row in rows:
            self.put("telemetry", tuple(getattr(row, c) for c in cols))

    def add_request(self, record: RequestRecord) -> None:
        self.put("requests", tuple(getattr(record, c) for c in _COLUMNS["requests"]))

    def add_agent(self, **values: Any) -> None:
        """Upsert an agent row (missing columns are NULL)."""
        self.put("agents", tuple(values.get(c) for c in _COLUMNS["agents"]))

    def add_event(self, agent: str, event: str, reason: str) -> None:
        self.put("agent_events", (time.time(), agent, event, reason))

    # --- flush and close ----------------------------------------------------------------------

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every row queued before this call is committed; False on timeout."""
        done = threading.Event()
        try:
            self._queue.put(("__flush__", done), timeout=timeout_s)
        except queue.Full:
            return False
        return done.wait(timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        """Write everything queued, mark the run finished, checkpoint the WAL and close the file."""
        if not self._thread.is_alive():
            return
        self._queue.put(_STOP, timeout=timeout_s)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error("store writer did not finish in %.0f s; %d rows still queued", timeout_s, self.queue_depth)

    # --- the writer thread ----------------------------------------------------------------------

    def _write_loop(self) -> None:
        try:
            db = sqlite3.connect(self.path)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            with db:
                db.executescript(_SCHEMA)
                db.execute(
                    "INSERT INTO runs (run_id, started_unix_s, version, config_json) VALUES (?, ?, ?, ?)", self._run_row
                )
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        stop = False
        while not stop:
            items = [self._queue.get()]
            while len(items) < self.batch_rows:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = self._commit(db, items)
        leftover = []  # rows put after the stop marker (none, when producers stopped first)
        while True:
            try:
                leftover.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._commit(db, leftover)
        with db:
            db.execute("UPDATE runs SET finished_unix_s = ? WHERE run_id = ?", (time.time(), self.run_id))
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        log.info("run store %s closed: %s", self.path, dict(self.written))

    def _commit(self, db: sqlite3.Connection, items: list[Any]) -> bool:
        """Insert ``items`` grouped by table in one transaction; True when the stop marker was among them."""
        rows: dict[str, list[tuple[Any, ...]]] = {}
        markers: list[threading.Event] = []
        stop = False
        for item in items:
            if item is _STOP:
                stop = True
            elif item[0] == "__flush__":
                markers.append(item[1])
            else:
                rows.setdefault(item[0], []).append(item[1])
        for table, values in rows.items():
            try:
                with db:
                    db.executemany(_INSERT[table], values)
                self.written[table] += len(values)
            except sqlite3.Error as exc:
                self.failed[table] += len(values)
                log.error("store: %d %s rows not written: %s", len(values), table, exc)
        for marker in markers:
            marker.set()
        return stop
