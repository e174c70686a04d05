"""Registration with the orchestrator daemon and heartbeats, as one task on the agent's event loop.

The task registers (bounded attempts, capped exponential backoff), then sends a Heartbeat every
interval the orchestrator assigned. A NOT_FOUND answer (the daemon restarted, or forgot the agent)
or ``max_heartbeat_failures`` failed heartbeats in a row start a new registration round. When a
round runs out of attempts the task logs an error and ends: the agent keeps serving, unregistered.
Every step is logged; stopping the agent cancels the task and closes its channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid

import grpc

from node_agent.agent import Agent
from node_agent.serde import orchestrator as serde
from protos import orchestrator_pb2_grpc

log = logging.getLogger(__name__)

#: Registration attempts per round before the agent gives up (and keeps serving unregistered).
REGISTER_ATTEMPTS = 12
#: First and largest wait between registration attempts, seconds (doubling in between).
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0
#: Failed heartbeats in a row after which the agent registers again.
MAX_HEARTBEAT_FAILURES = 3
#: Time limit of one RegisterAgent or Heartbeat call, seconds.
RPC_TIMEOUT_S = 5.0
#: Heartbeat intervals the agent accepts from the orchestrator, seconds.
MIN_INTERVAL_S, MAX_INTERVAL_S = 0.05, 60.0
_WILDCARD_HOSTS = {"0.0.0.0", "::", "[::]", ""}


def advertised_address(listen_host: str, port: int) -> str:
    """The HOST:PORT to advertise: the bound address, with the hostname for a wildcard host."""
    host = socket.gethostname() if listen_host in _WILDCARD_HOSTS else listen_host
    return f"{host}:{port}"


class Registration:
    """Registers ``agent`` with the orchestrator at ``target`` and keeps it alive with heartbeats.

    Args:
        agent: the running agent (its status, models and queue depth are reported).
        address: HOST:PORT the agent is reachable at (its bound address).
        target: the orchestrator's HOST:PORT.
        heartbeat_s: interval used until the orchestrator assigns one, seconds.
        attempts: registration attempts per round.
        backoff_initial_s: first wait between attempts, doubled each time up to ``backoff_max_s``.
        backoff_max_s: largest wait between attempts, seconds.
        max_heartbeat_failures: failed heartbeats in a row before registering again.
        rpc_timeout_s: time limit of each call, seconds.
    """

    def __init__(
        self,
        agent: Agent,
        address: str,
        target: str,
        heartbeat_s: float,
        *,
        attempts: int = REGISTER_ATTEMPTS,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        max_heartbeat_failures: int = MAX_HEARTBEAT_FAILURES,
        rpc_timeout_s: float = RPC_TIMEOUT_S,
    ) -> None:
        self.agent = agent
        self.address = address
        self.target = target
        self.interval_s = heartbeat_s
        self.attempts = attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_heartbeat_failures = max_heartbeat_failures
        self.rpc_timeout_s = rpc_timeout_s
        self.registrations = 0  # successful RegisterAgent calls
        self.heartbeats = 0  # acknowledged heartbeats
        self.gave_up = False
        self.instance_id = uuid.uuid4().hex  # tells the daemon a restarted agent from a re-registering one
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the task on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"registration-{self.agent.name}")

    async def stop(self) -> None:
        """Cancel the task (no more heartbeats) and wait for it to close its channel."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            while await self._register(stub):
                await self._heartbeat_until_lost(stub)

    async def _register(self, stub: orchestrator_pb2_grpc.OrchestratorStub) -> bool:
        """One registration round; True once registered, False after the last failed attempt."""
        wait_s = self.backoff_initial_s
        for attempt in range(1, self.attempts + 1):
            request = serde.register_request(
                self.agent.name,
                self.address,
                self.instance_id,
                self.agent.status(),
                self.agent.list_models(),
                self.agent.engine.loaded(),
            )
            try:
                response = await stub.RegisterAgent(request, timeout=self.rpc_timeout_s)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    log.error("orchestrator %s refused agent %s: %s", self.target, self.agent.name, exc.details())
                    break
                last = attempt == self.attempts
                log.warning(
                    "registering agent %s with orchestrator %s failed (attempt %d/%d): %s: %s; %s",
                    self.agent.name,
                    self.target,
                    attempt,
                    self.attempts,
                    exc.code().name,
                    exc.details(),
                    "no attempts left" if last else f"retrying in {wait_s:.2f} s",
                )
                if not last:
                    await asyncio.sleep(wait_s)
                    wait_s = min(2.0 * wait_s, self.backoff_max_s)
                continue
            self._set_interval(serde.heartbeat_interval_s(response))
            self.registrations += 1
            log.info(
                "agent %s registered with orchestrator %s as %s; heartbeat every %.3g s",
                self.agent.name,
                self.target,
                self.address,
                self.interval_s,
            )
            return True
        self.gave_up = True
        log.error(
            "agent %s gives up registering with orchestrator %s after %d attempts; it keeps serving, unregistered",
            self.agent.name,
            self.target,
            self.attempts,
        )
        return False

    async def _heartbeat_until_lost(self, stub: orchestrator_pb2_grpc.OrchestratorStub) -> None:
        """Heartbeat every interval (at a fixed rate, so a slow call does not stretch the gap);
        returns when the agent must register again."""
        seq, failures = 0, 0
        next_s = time.monotonic()
        while True:
            next_s = max(next_s + self.interval_s, time.monotonic())  # late: at once, never a burst
            await asyncio.sleep(next_s - time.monotonic())
            seq += 1
            engine = self.agent.engine
            request = serde.heartbeat_request(self.agent.name, seq, engine.loaded(), engine.queue_depth())
            try:
                response = await stub.Heartbeat(request, timeout=min(self.rpc_timeout_s, max(self.interval_s, 1.0)))
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    log.warning(
                        "orchestrator %s does not know agent %s; registering again", self.target, self.agent.name
                    )
                    return
                failures += 1
                log.warning(
                    "heartbeat %d of agent %s to %s failed (%d/%d in a row): %s: %s",
                    seq,
                    self.agent.name,
                    self.target,
                    failures,
                    self.max_heartbeat_failures,
                    exc.code().name,
                    exc.details(),
                )
                if failures >= self.max_heartbeat_failures:
                    log.error("agent %s lost orchestrator %s; registering again", self.agent.name, self.target)
                    return
                continue
            failures = 0
            self.heartbeats += 1
            self._set_interval(serde.heartbeat_interval_s(response))

    def _set_interval(self, assigned_s: float | None) -> None:
        if assigned_s is not None:
            self.interval_s = min(max(assigned_s, MIN_INTERVAL_S), MAX_INTERVAL_S)
