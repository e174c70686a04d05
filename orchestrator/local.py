"""Start node agents (and the orchestrator daemon) as child processes on loopback (demo, tests, benchmarks)."""

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
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass
class LocalProcess:
    """A running child process that said where it listens (an agent or the orchestrator daemon)."""

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


#: An ``edgetb-agent serve`` child process.
LocalAgent = LocalProcess


#: Run as ``python -I -S -c _DIE_WITH_PARENT PARENT_PID CMD...``: ask Linux to SIGTERM this process when the
#: thread that started it dies (kept across exec), exit if that parent is already gone, then exec CMD.
_DIE_WITH_PARENT = f"""
import ctypes, os, signal, sys
prctl = ctypes.CDLL(None, use_errno=True).prctl
prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
if prctl({_PR_SET_PDEATHSIG}, signal.SIGTERM, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_PDEATHSIG): " + os.strerror(ctypes.get_errno()))
if os.getppid() != int(sys.argv[1]):
    sys.exit("the parent exited before its child started")
os.execvp(sys.argv[2], sys.argv[2:])
"""


def _die_with_parent(cmd: list[str]) -> list[str]:
    """``cmd`` behind a small launcher that asks Linux to SIGTERM the child when its parent thread dies
    (``PR_SET_PDEATHSIG``); ``cmd`` itself off Linux.

    Not a ``preexec_fn``: with one, ``subprocess`` forks instead of vforking, gRPC's fork handlers restart
    its poller in the child, and the child can crash on ``epoll_wait: Bad file descriptor`` when it closes
    file descriptors before exec (grpc/grpc#43055; about 1 child in 10 with a busy ``grpc.aio`` server in
    the parent).
    """
    if not sys.platform.startswith("linux"):
        return cmd
    return [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *cmd]


def start_process(
    name: str,
    cmd: list[str],
    *,
    timeout_s: float = 60.0,
    pattern: re.Pattern[str] = _LISTENING,
    die_with_parent: bool = False,
    own_process_group: bool = False,
) -> LocalProcess:
    """Start ``cmd`` and wait until a line of its output matches ``pattern`` (group 1: HOST:PORT).

    Args:
        name: name used in messages and the output thread's name.
        cmd: the command line.
        timeout_s: how long to wait for the line, seconds.
        pattern: what the ready line looks like.
        die_with_parent: on Linux, the child gets SIGTERM when the thread that started it dies
            (``PR_SET_PDEATHSIG``), so a hard-killed parent leaves no child behind.
        own_process_group: start the child in a session (and process group) of its own, so a terminal's Ctrl-C
            reaches only the parent, which then stops its children in order.

    Raises:
        RuntimeError: the child exited or did not say it listens in ``timeout_s``; its output is included.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        _die_with_parent(cmd) if die_with_parent else cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=own_process_group,
    )
    output: deque[str] = deque(maxlen=LOG_LINES)
    found = threading.Event()
    address: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip())
            match = pattern.search(line)
            if match and not found.is_set():
                address.append(match.group(1))
                found.set()
        found.set()

    threading.Thread(target=pump, name=f"{name}-output", daemon=True).start()
    try:
        started = found.wait(timeout_s) and bool(address)
    except BaseException:  # e.g. Ctrl-C while waiting: the caller does not know this child yet
        started = False
        raise
    finally:
        if not started:
            process.kill()
            process.wait()
    if not started:
        raise RuntimeError(f"{name} did not start:\n" + "\n".join(output))
    return LocalProcess(name=name, address=address[0], process=process, output=output)


def start_agent(
    name: str,
    models: Path,
    *,
    device: str = "auto",
    telemetry_hz: float = 10.0,
    extra: tuple[str, ...] = (),
    timeout_s: float = 60.0,
    **options: bool,
) -> LocalAgent:
    """Start an agent on 127.0.0.1 with a free port and wait until it says where it listens.

    ``options`` go to :func:`start_process` (``die_with_parent``, ``own_process_group``).

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
    return start_process(f"agent {name}", cmd, timeout_s=timeout_s, **options)


@contextlib.contextmanager
def local_agent(name: str, models: Path, **kwargs: object) -> Iterator[LocalAgent]:
    """Context manager around :func:`start_agent` that always stops the child."""
    agent = start_agent(name, models, **kwargs)  # type: ignore[arg-type]
    try:
        yield agent
    finally:
        agent.stop()
