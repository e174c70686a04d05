"""The orchestrator daemon: registry, telemetry ingest, routing, run store and metrics together.

``Daemon.start`` opens the run store, starts the gRPC server (Orchestrator + health + reflection),
the ``/metrics`` endpoint, the liveness supervisor, one health-check task per static agent and,
with ``[policy]``, the policy loop (``orchestrator.policy_loop``); telemetry ingest tasks follow the
agents' up/down changes. ``Daemon.stop`` (SIGTERM/SIGINT under
``serve``) stops accepting, lets in-flight requests finish, ends the streams and checks, flushes
the store and closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.metadata
import json
import logging
import signal
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import replace
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from orchestrator.agent_link import AgentLink
from orchestrator.config import OrchestratorConfig
from orchestrator.ingest import TelemetryIngest
from orchestrator.metrics import Metrics
from orchestrator.policy_loop import PolicyLoop
from orchestrator.registry import UP, AgentEntry, Capabilities, Registry
from orchestrator.router import Router
from orchestrator.servicer import OrchestratorServicer
from orchestrator.store import Store
from protos import orchestrator_pb2, orchestrator_pb2_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")

SERVICE_NAME = orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"].full_name
#: Time in-flight requests get to finish at shutdown, seconds.
GRACE_S = 30.0


def _version() -> str:
    try:
        return importlib.metadata.version("edgetb")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


class Daemon:
    """One orchestrator daemon on the current event loop."""

    def __init__(self, config: OrchestratorConfig) -> None:
        self.config = config
        limits = config.limits
        self.store = Store(
            config.run_dir,
            limits.store_queue_capacity,
            limits.store_batch_rows,
            config=config.model_dump(mode="json"),
            version=_version(),
        )
        self.metrics = Metrics(self.store)
        static = [(a.name, a.address) for a in config.agents]
        self.registry = Registry(config.heartbeat_s, limits.max_agents, static, on_change=self._on_change)
        self.router = Router(self.registry, self.link, self.store, self.metrics, limits)
        self.policy_loop: PolicyLoop | None = None
        if config.policy is not None:
            self.policy_loop = PolicyLoop(
                config.policy, self.registry, self.link, self.store, self.metrics, limits, self.router.inflight
            )
            self.router.policy = self.policy_loop
        self.port = 0
        self.metrics_port: int | None = None
        self._links: dict[str, AgentLink] = {}
        self._closing_links: set[asyncio.Task[None]] = set()  # links to addresses agents moved away from
        self._ingest: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._server: grpc.aio.Server | None = None
        self._health = health_aio.HealthServicer()
        self._closing = False

    @property
    def address(self) -> str:
        return f"{self.config.listen.rpartition(':')[0]}:{self.port}"

    async def start(self) -> None:
        """Open the store, bind and start the server, metrics, supervisor and health checks."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.store.start)
        limits = self.config.limits
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limits.max_message_bytes),
                ("grpc.max_send_message_length", limits.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=limits.max_concurrent_rpcs,
        )
        servicer = OrchestratorServicer(
            self.registry, self.router, self.config.heartbeat_s, self.store.run_id,
            policies=self.policy_loop.names if self.policy_loop is not None else list, on_register=self._store_agent,
        )  # fmt: skip
        orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
        reflection.enable_server_reflection((SERVICE_NAME, health_name, reflection.SERVICE_NAME), server)
        self.port = server.add_insecure_port(self.config.listen)
        if self.port == 0:
            self.store.close()
            raise OSError(f"listen: cannot bind {self.config.listen}")
        await server.start()
        self._server = server
        for name in ("", SERVICE_NAME):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self.config.metrics_listen:
            self.metrics_port = self.metrics.serve(self.config.metrics_listen)
        self._tasks.append(loop.create_task(self._supervise(), name="liveness"))
        if self.policy_loop is not None:
            await self.policy_loop.start()
        for entry in self.registry.entries.values():
            self._tasks.append(loop.create_task(self._watch_static(entry), name=f"health-{entry.name}"))
        log.info("orchestrator on %s; run store %s", self.address, self.store.path)

    async def stop(self, grace_s: float = GRACE_S) -> None:
        """Stop accepting, let in-flight requests finish (up to ``grace_s``), close streams, flush the store."""
        self._closing = True
        await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace_s)
        if self.policy_loop is not None:
            await self.policy_loop.stop()
        tasks = [*self._tasks, *self._ingest.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for link in self._links.values():
            await link.close()
        await asyncio.gather(*self._closing_links, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self.store.close)
        self.metrics.stop()
        log.info("orchestrator stopped; requests by outcome: %s", dict(self.router.outcomes))

    def link(self, entry: AgentEntry) -> AgentLink:
        """The connection to ``entry`` (a new one when its address changed)."""
        link = self._links.get(entry.name)
        if link is None or link.address != entry.address:
            if link is not None:  # the agent moved: RPCs still on the old link fail and are retried
                task = asyncio.get_running_loop().create_task(link.close())
                self._closing_links.add(task)
                task.add_done_callback(self._closing_links.discard)
            link = self._links[entry.name] = AgentLink(entry.name, entry.address, self.config.limits.max_message_bytes)
        return link

    def _on_change(self, entry: AgentEntry, event: str, reason: str) -> None:
        self.store.add_event(entry.name, event, reason)
        self.metrics.agents_up.set(len(self.registry.up()))
        if event != UP:
            task = self._ingest.pop(entry.name, None)
            if task is not None:
                task.cancel()
        if entry.state == UP and not self._closing and entry.name not in self._ingest:
            limits = self.config.limits
            ingest = TelemetryIngest(
                entry, lambda: self.link(entry), self.registry, self.store, self.metrics,
                batch_size=self.config.telemetry_batch_size, max_failures=limits.ingest_max_failures,
                backoff_max_s=limits.ingest_backoff_max_s,
            )  # fmt: skip
            self._ingest[entry.name] = asyncio.get_running_loop().create_task(ingest.run(), name=f"ingest-{entry.name}")

    def _store_agent(self, name: str) -> None:
        entry = self.registry.entries[name]
        c = entry.capabilities
        self.store.add_agent(
            name=name, address=entry.address, static=int(entry.static), registered=int(entry.registered),
            device_kind=c.device_kind, device_name=c.device_name, mem_total_bytes=c.mem_total_bytes,
            power_source=c.power_source, version=c.version, models_json=json.dumps(list(c.models)),
            updated_unix_s=time.time(),
        )  # fmt: skip

    async def _supervise(self) -> None:
        """Put silent agents down, a few times per heartbeat interval."""
        period_s = min(self.config.heartbeat_s / 4, 0.5)
        while True:
            await asyncio.sleep(period_s)
            self.registry.evaluate()
            self.metrics.agents_up.set(len(self.registry.up()))

    async def _watch_static(self, entry: AgentEntry) -> None:
        """Health-check a static agent every interval (until it registers), refreshing its models.

        A check that fails answers down at once; one that hangs (up to ``limits.rpc_timeout_s``)
        lets the registry's 3-interval silence rule decide.
        """
        timeout_s = self.config.limits.rpc_timeout_s
        described = False
        next_s = time.monotonic()
        while True:
            if not entry.registered:
                link = self.link(entry)
                serving = await link.healthy(timeout_s)
                loaded, capabilities = None, None
                if serving:
                    try:
                        models = await link.models(timeout_s)
                        servable = tuple(m.name for m in models if not m.error)
                        loaded = [m.name for m in models if m.loaded]
                        if not described:
                            info = await link.info(timeout_s)
                            capabilities = Capabilities(
                                device_kind=info.device_kind, device_name=info.device_name,
                                mem_total_bytes=info.mem_total_bytes,
                                telemetry_sources=tuple((m, s) for m, (s, _) in info.sources.items()),
                                models=servable, version=info.version, execution_providers=info.execution_providers,
                            )  # fmt: skip
                        else:
                            capabilities = replace(entry.capabilities, models=servable)
                    except grpc.aio.AioRpcError as exc:
                        log.warning("agent %s: listing its models failed: %s", entry.name, exc.code().name)
                        serving = False
                self.registry.health_result(entry.name, serving, loaded, capabilities)
                if serving and not described:
                    described = True
                    self._store_agent(entry.name)
            next_s = max(next_s + self.config.heartbeat_s, time.monotonic())  # a fixed rate; late: at once
            await asyncio.sleep(next_s - time.monotonic())


async def serve(config: OrchestratorConfig) -> None:
    """Run the daemon until SIGTERM or SIGINT, then stop gracefully."""
    daemon = Daemon(config)
    await daemon.start()
    # Start-up objects (modules, torch and the loaded policies when [policy] has them) live as long as
    # the process: the permanent generation keeps full collections from scanning them again and again
    # (a full collection took ~30 ms of one allocation decision in bench/orchestrator_scale.py).
    gc.freeze()
    log.info("%d start-up objects frozen (gc.freeze)", gc.get_freeze_count())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics = "off"
    if daemon.metrics_port is not None:
        metrics = f"http://{config.metrics_listen.rpartition(':')[0]}:{daemon.metrics_port}/metrics"
    print(
        f"edgetb orchestrator listening on {daemon.address}; metrics {metrics}; store {daemon.store.path}", flush=True
    )
    await stop.wait()
    log.info("stopping the orchestrator")
    await daemon.stop()


class RunningDaemon:
    """A daemon on a background event loop (tests, benchmarks); ``call`` runs a coroutine there."""

    def __init__(self, daemon: Daemon, loop: asyncio.AbstractEventLoop) -> None:
        self.daemon = daemon
        self.loop = loop

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout_s)


@contextlib.contextmanager
def running_daemon(config: OrchestratorConfig, grace_s: float = 5.0) -> Iterator[RunningDaemon]:
    """Run a daemon on a thread with its own event loop; on exit it is stopped and the thread joined."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="orchestrator", daemon=True)
    thread.start()
    try:
        daemon = Daemon(config)
        running = RunningDaemon(daemon, loop)
        running.call(daemon.start())
        try:
            yield running
        finally:
            running.call(daemon.stop(grace_s))
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
