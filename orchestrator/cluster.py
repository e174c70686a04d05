"""A local cluster on loopback: the orchestrator daemon, N edge agents and a ``cloud`` agent as children.

Used by ``edgetb up`` and by tests and demos::

    with LocalCluster(n_agents=2, device="simulated", sim_profile=Path("sim.toml")) as cluster:
        cluster.daemon_address       # "127.0.0.1:PORT"
        cluster.agents               # {"edge-1": "127.0.0.1:PORT", ..., "cloud": ...}
        cluster.status().agents      # what the daemon's GetStatus reports

The daemon starts first (``edgetb serve`` with a TOML file written into the run folder); the agents
register with it (``--orchestrator``). The cloud agent adds an *emulated* WAN delay to every
generation and preloads every model of the repository. Leaving the context stops the agents
(SIGTERM, bounded wait, SIGKILL) and then the daemon. On Linux every child also gets SIGTERM if
the thread that started it dies (``PR_SET_PDEATHSIG``), so a hard-killed parent leaves none behind.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from types import TracebackType

import grpc

from orchestrator.daemon_client import OrchestratorClient
from orchestrator.daemon_serde import DaemonStatus
from orchestrator.local import LocalProcess, start_agent, start_process

#: The shipped model repository (``profiles/models``).
SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "profiles" / "models"
DEVICES = ("auto", "cpu", "simulated")
MAX_AGENTS = 16
CLOUD = "cloud"
_DAEMON_READY = re.compile(r"orchestrator listening on (\S+:\d+)")
_METRICS = re.compile(r"; metrics (\S+);")
#: Lines of each child's output included in an error message.
ERROR_LINES = 15


class ClusterError(RuntimeError):
    """The cluster did not come up; the message includes the children's last output lines."""


def repository_models(models: Path) -> list[str]:
    """The model names of a repository: its sub-folders that hold a ``model.toml``, sorted."""
    return sorted(p.parent.name for p in models.glob("*/model.toml"))


class LocalCluster:
    """The daemon plus ``edge-1..edge-N`` (and ``cloud``) as child processes on loopback.

    Args:
        n_agents: edge agents, 1..16.
        models: model repository folder of every agent.
        device: ``auto``, ``cpu`` or ``simulated`` (then ``sim_profile`` is needed), for all agents.
        sim_profile: device profile TOML for the simulated device.
        cloud: also start the ``cloud`` agent.
        cloud_delay_ms: mean emulated WAN round-trip delay of the cloud agent, milliseconds.
        cloud_jitter_ms: standard deviation of that delay, milliseconds.
        cloud_delay_seed: seed of the cloud agent's delay draws.
        run_dir: folder of the daemon's TOML file and run store (created if missing).
        listen: HOST:PORT of the daemon's gRPC API; port 0 picks a free one.
        metrics_listen: HOST:PORT of the daemon's ``/metrics``; port 0 picks a free one.
        heartbeat_s: heartbeat interval the daemon assigns, seconds.
        telemetry_hz: agents' sampler rate, Hz.
        ready_timeout_s: how long the whole cluster may take to come up, seconds.
        stop_timeout_s: how long each child gets to stop after SIGTERM before SIGKILL, seconds.
        policy: the daemon's ``[policy]`` table (str, int or float values); None runs no policy loop.
    """

    def __init__(
        self,
        n_agents: int = 2,
        *,
        models: Path = SHIPPED_MODELS,
        device: str = "auto",
        sim_profile: Path | None = None,
        cloud: bool = True,
        cloud_delay_ms: float = 80.0,
        cloud_jitter_ms: float = 10.0,
        cloud_delay_seed: int = 0,
        run_dir: Path = Path("runs/cluster"),
        listen: str = "127.0.0.1:0",
        metrics_listen: str = "127.0.0.1:0",
        heartbeat_s: float = 1.0,
        telemetry_hz: float = 10.0,
        ready_timeout_s: float = 120.0,
        stop_timeout_s: float = 20.0,
        policy: dict[str, str | int | float] | None = None,
    ) -> None:
        if not 1 <= n_agents <= MAX_AGENTS:
            raise ValueError(f"n_agents: {n_agents} is outside 1..{MAX_AGENTS}")
        if device not in DEVICES:
            raise ValueError(f"device: '{device}' is not one of {', '.join(DEVICES)}")
        if device == "simulated" and sim_profile is None:
            raise ValueError("sim_profile: the simulated device needs a device profile file")
        if not models.is_dir():
            raise ValueError(f"models: {models} is not a folder")
        self.n_agents = n_agents
        self.models = models.resolve()
        self.device = device
        self.sim_profile = sim_profile.resolve() if sim_profile is not None else None
        self.cloud = cloud
        self.cloud_delay = (cloud_delay_ms, cloud_jitter_ms, cloud_delay_seed)
        self.run_dir = run_dir.resolve()
        self.listen = listen
        self.metrics_listen = metrics_listen
        self.heartbeat_s = heartbeat_s
        self.telemetry_hz = telemetry_hz
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.policy = dict(policy) if policy else None
        self.daemon: LocalProcess | None = None
        self.agent_processes: dict[str, LocalProcess] = {}
        self.metrics_url = ""
        self.exit_codes: dict[str, int] = {}
        self._client: OrchestratorClient | None = None

    @property
    def names(self) -> list[str]:
        """The agents' names: ``edge-1..edge-N``, then ``cloud``."""
        return [f"edge-{i}" for i in range(1, self.n_agents + 1)] + ([CLOUD] if self.cloud else [])

    @property
    def daemon_address(self) -> str:
        """HOST:PORT of the daemon's gRPC API."""
        if self.daemon is None:
            raise RuntimeError("the cluster is not running")
        return self.daemon.address

    @property
    def agents(self) -> dict[str, str]:
        """Agent name -> HOST:PORT."""
        return {name: proc.address for name, proc in self.agent_processes.items()}

    @property
    def processes(self) -> dict[str, LocalProcess]:
        """Every child: ``orchestrator`` and the agents, in start order."""
        return ({"orchestrator": self.daemon} if self.daemon is not None else {}) | self.agent_processes

    def status(self) -> DaemonStatus:
        """The daemon's GetStatus."""
        if self._client is None:
            raise RuntimeError("the cluster is not running")
        return self._client.status()

    def start(self) -> None:
        """Start the daemon, then the agents, and wait until the daemon sees every agent up.

        Raises:
            ClusterError: a child did not start, exited, or the agents were not all up within
                ``ready_timeout_s``; everything started is stopped first.
        """
        deadline_s = time.monotonic() + self.ready_timeout_s
        try:
            self._start_daemon(deadline_s)
            for name in self.names:
                self.agent_processes[name] = self._start_agent(name, deadline_s)
            self._wait_up(deadline_s)
        except BaseException as exc:
            message = self._report(exc)
            self.stop()
            if isinstance(exc, (RuntimeError, grpc.RpcError)):
                raise ClusterError(message) from exc
            raise

    def stop(self) -> dict[str, int]:
        """Stop the agents (SIGTERM; SIGKILL after ``stop_timeout_s``), then the daemon.

        Returns:
            Exit code per child name (``orchestrator`` for the daemon).
        """
        if self._client is not None:
            self._client.close()
            self._client = None
        for name, proc in reversed(self.agent_processes.items()):
            self.exit_codes[name] = proc.stop(self.stop_timeout_s)
        if self.daemon is not None:
            self.exit_codes["orchestrator"] = self.daemon.stop(self.stop_timeout_s)
        return dict(self.exit_codes)

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # --- the parts ------------------------------------------------------------------------------

    def _start_daemon(self, deadline_s: float) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config = self.run_dir / "orchestrator.toml"
        text = (
            "# written by edgetb up / LocalCluster\n"
            f'listen = "{self.listen}"\nmetrics_listen = "{self.metrics_listen}"\n'
            f'heartbeat_s = {self.heartbeat_s}\nrun_dir = "."\n'
        )
        if self.policy:
            text += "\n[policy]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in self.policy.items())
        config.write_text(text)
        cmd = [sys.executable, "-m", "orchestrator.cli", "serve", "--config", str(config)]
        self.daemon = start_process(
            "orchestrator",
            cmd,
            timeout_s=max(1.0, deadline_s - time.monotonic()),
            pattern=_DAEMON_READY,
            die_with_parent=True,
            own_process_group=True,
        )
        for line in self.daemon.output:
            match = _METRICS.search(line)
            if match and match.group(1) != "off":
                self.metrics_url = match.group(1)
        self._client = OrchestratorClient(self.daemon.address, timeout_s=10.0)

    def _start_agent(self, name: str, deadline_s: float) -> LocalProcess:
        extra = ["--orchestrator", self.daemon_address, "--heartbeat-s", str(self.heartbeat_s)]
        if self.sim_profile is not None:
            extra += ["--sim-profile", str(self.sim_profile)]
        if name == CLOUD:
            delay_ms, jitter_ms, seed = self.cloud_delay
            extra += ["--emulated-delay-ms", str(delay_ms), "--emulated-delay-jitter-ms", str(jitter_ms)]
            extra += ["--emulated-delay-seed", str(seed)]
            for model in repository_models(self.models):
                extra += ["--preload", model]
        return start_agent(
            name,
            self.models,
            device=self.device,
            telemetry_hz=self.telemetry_hz,
            extra=tuple(extra),
            timeout_s=max(1.0, deadline_s - time.monotonic()),
            die_with_parent=True,
            own_process_group=True,
        )

    def _wait_up(self, deadline_s: float) -> None:
        """Poll GetStatus (every 0.1 s) until every agent is up, then briefly until each sent telemetry."""
        want = set(self.names)
        up: set[str] = set()
        while True:
            self._check_alive()
            try:
                status = self.status()
            except grpc.RpcError:
                status = None
            if status is not None:
                up = {a.name for a in status.agents if a.state == "up"}
                if want <= up:
                    break
            if time.monotonic() > deadline_s:
                raise RuntimeError(
                    f"not every agent came up within {self.ready_timeout_s:g} s; up: "
                    f"{', '.join(sorted(up)) or 'none'}; missing: {', '.join(sorted(want - up))}"
                )
            time.sleep(0.1)
        # telemetry names each agent's power source; without it the table would say "unavailable"
        settle_s = min(deadline_s, time.monotonic() + 5.0)
        while time.monotonic() < settle_s:
            if all(a.telemetry_rows > 0 for a in self.status().agents if a.name in want):
                return
            time.sleep(0.1)

    def _check_alive(self) -> None:
        for name, proc in self.processes.items():
            code = proc.process.poll()
            if code is not None:
                raise RuntimeError(f"{name} exited with code {code}")

    def _report(self, exc: BaseException) -> str:
        lines = [f"the local cluster did not come up: {exc}"]
        for name, proc in self.processes.items():
            lines.append(f"--- {name} (last output) ---")
            lines.extend(list(proc.output)[-ERROR_LINES:])
        return "\n".join(lines)
