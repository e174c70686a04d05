"""Start node agents as child processes on loopback (for the demo, tests and benchmarks)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_LISTENING = re.compile(r"listening on (\S+:\d+)")
#: Lines of a child's output kept for error messages.
LOG_LINES = 200


@dataclass
class LocalAgent:
    """A running ``edgetb-agent serve`` child process."""

    name: str
    address: str
    process: subprocess.Popen[str]
    output: deque[str]

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, wait for the graceful stop; SIGKILL if it does not come. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def start_agent(
    name: str,
    models: Path,
    *,
    device: str = "auto",
    telemetry_hz: float = 10.0,
    extra: tuple[str, ...] = (),
    timeout_s: float = 60.0,
) -> LocalAgent:
    """Start an agent on 127.0.0.1 with a free port and wait until it says where it listens.

    Raises:
        RuntimeError: the agent exited or did not come up in ``timeout_s``; its output is included.
    """
    cmd = [
        sys.executable,
        "-m",
        "node_agent.cli",
        "serve",
        "--name",
        name,
        "--listen",
        "127.0.0.1:0",
        "--models",
        str(models),
        "--device",
        device,
        "--telemetry-hz",
        str(telemetry_hz),
        *extra,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    output: deque[str] = deque(maxlen=LOG_LINES)
    found = threading.Event()
    address: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip())
            match = _LISTENING.search(line)
            if match and not found.is_set():
                address.append(match.group(1))
                found.set()
        found.set()

    threading.Thread(target=pump, name=f"agent-{name}-output", daemon=True).start()
    if not found.wait(timeout_s) or not address:
        process.kill()
        process.wait()
        raise RuntimeError(f"agent {name} did not start:\n" + "\n".join(output))
    return LocalAgent(name=name, address=address[0], process=process, output=output)


@contextlib.contextmanager
def local_agent(name: str, models: Path, **kwargs: object) -> Iterator[LocalAgent]:
    """Context manager around :func:`start_agent` that always stops the child."""
    agent = start_agent(name, models, **kwargs)  # type: ignore[arg-type]
    try:
        yield agent
    finally:
        agent.stop()
