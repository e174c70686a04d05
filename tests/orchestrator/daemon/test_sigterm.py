"""``edgetb serve`` as a child process: SIGTERM lets an in-flight request finish, exits 0 and leaves
a consistent SQLite file (WAL checkpointed, run marked finished, every request and sample there)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import pytest

from node_agent.server import running_agent
from orchestrator.daemon_client import OrchestratorClient

_LISTENING = re.compile(r"listening on (\S+:\d+);.* store (\S+\.sqlite)")


def _start_daemon(config: Path) -> tuple[subprocess.Popen[str], str, Path, deque[str]]:
    cmd = [sys.executable, "-m", "orchestrator.cli", "serve", "--config", str(config), "--log-level", "info"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    output: deque[str] = deque(maxlen=400)
    found: list[re.Match[str]] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line.rstrip())
            match = _LISTENING.search(line)
            if match and not found:
                found.append(match)
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(60) or not found:
        proc.kill()
        pytest.fail("daemon did not start:\n" + "\n".join(output))
    return proc, found[0].group(1), Path(found[0].group(2)), output


def test_sigterm_finishes_in_flight_requests_and_leaves_a_consistent_store(agent_config, tmp_path, wait_for) -> None:
    with running_agent(agent_config("edge-s", preload=("slow", "tiny"))) as agent:
        config = tmp_path / "orchestrator.toml"
        config.write_text(
            'listen = "127.0.0.1:0"\nmetrics_listen = "127.0.0.1:0"\nheartbeat_s = 0.2\nrun_dir = "runs"\n'
            f'telemetry_batch_size = 10\n\n[[agents]]\nname = "edge-s"\naddress = "{agent.address}"\n'
        )
        proc, address, store, output = _start_daemon(config)
        try:
            assert store.parent == tmp_path / "runs"
            with OrchestratorClient(address, timeout_s=60) as client:
                wait_for(lambda: [a.state for a in client.status().agents] == ["up"], what="agent up")
                wait_for(lambda: client.status().agents[0].telemetry_rows >= 20, what="telemetry")
                client.submit("tiny", label=1, request_id="before")
                result: dict[str, object] = {}

                def slow() -> None:
                    try:
                        result["routed"] = client.submit("slow", label=2, steps=1000, request_id="in-flight")
                    except Exception as exc:
                        result["error"] = exc

                thread = threading.Thread(target=slow)
                thread.start()
                time.sleep(0.3)  # let it reach the agent: 1000 steps take seconds there
                assert thread.is_alive(), "the slow request finished before SIGTERM: make it slower"
                started = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                thread.join(60)
                assert "error" not in result, result
                assert result["routed"].agent == "edge-s"  # type: ignore[attr-defined]
            assert proc.wait(60) == 0, "\n".join(output)
            assert time.monotonic() - started < 30
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert not Path(f"{store}-wal").exists() or Path(f"{store}-wal").stat().st_size == 0
    with contextlib.closing(sqlite3.connect(store)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        (finished,) = db.execute("SELECT finished_unix_s FROM runs").fetchone()
        assert finished is not None and finished <= time.time()
        rows = db.execute("SELECT request_id, outcome, agent FROM requests ORDER BY id").fetchall()
        assert rows == [("before", "ok", "edge-s"), ("in-flight", "ok", "edge-s")]
        seqs = [s for (s,) in db.execute("SELECT seq FROM telemetry WHERE agent = 'edge-s' ORDER BY seq")]
        assert len(seqs) >= 20 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert db.execute("SELECT event FROM agent_events").fetchall()[0] == ("up",)
    assert any("orchestrator stopped" in line for line in output), "\n".join(output)
    # the start-up objects went to the permanent GC generation (full collections skip them)
    frozen = [int(m.group(1)) for line in output if (m := re.search(r"(\d+) start-up objects frozen", line))]
    assert frozen and frozen[0] > 10_000, "\n".join(output)
