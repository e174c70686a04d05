"""A live in-process cluster for the policy-loop tests: the daemon with a ``[policy]`` table, simulated agents.

Fixtures:
    wait_for: ``wait_for(check, timeout_s=20, what=...)``: poll every 20 ms, fail after the timeout.
    policy_cluster: ``policy_cluster(run_dir, policy, edges, heartbeat_s)``: a context manager yielding
        ``SimpleNamespace(daemon, client)`` once the edge agents and a ``cloud`` agent (30 ms emulated
        delay) have registered and are up.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from node_agent.config import AgentConfig
from node_agent.server import running_agent
from orchestrator.config import OrchestratorConfig
from orchestrator.daemon import running_daemon
from orchestrator.daemon_client import OrchestratorClient


def _wait_for(check: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition") -> None:
    """Poll every 20 ms; fail after ``timeout_s``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="session")
def wait_for() -> Callable[..., None]:
    """``wait_for(check, timeout_s=20, what=...)``: poll every 20 ms, fail after the timeout."""
    return _wait_for


@pytest.fixture(scope="session")
def policy_cluster(sim_profile_toml) -> Callable[..., contextlib.AbstractContextManager[SimpleNamespace]]:
    @contextlib.contextmanager
    def start(run_dir: Path, policy: dict, edges: tuple[str, ...], heartbeat_s: float) -> Iterator[SimpleNamespace]:
        sim_profile = run_dir / "sim.toml"
        sim_profile.write_text(sim_profile_toml(max_mem_used_bytes=1_000_000_000))
        with contextlib.ExitStack() as stack:
            config = OrchestratorConfig.build(
                listen="127.0.0.1:0", metrics_listen="", heartbeat_s=heartbeat_s, run_dir=run_dir / "runs",
                policy=policy,
            )  # fmt: skip
            daemon = stack.enter_context(running_daemon(config))
            for name, delay_ms in [(e, 0.0) for e in edges] + [("cloud", 30.0)]:
                agent = AgentConfig(
                    name=name, listen="127.0.0.1:0", device="simulated", sim_profile=sim_profile, telemetry_hz=20.0,
                    intra_op_threads=1, orchestrator=daemon.daemon.address, heartbeat_s=heartbeat_s,
                    emulated_delay_ms=delay_ms,
                )  # fmt: skip
                stack.enter_context(running_agent(agent))
            client = stack.enter_context(OrchestratorClient(daemon.daemon.address, timeout_s=60))
            names = {*edges, "cloud"}
            _wait_for(lambda: {a.name for a in client.status().agents if a.state == "up"} == names, what="agents up")
            yield SimpleNamespace(daemon=daemon.daemon, client=client)

    return start
