"""The Orchestrator gRPC service: registration, heartbeats, Submit and GetStatus."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

import grpc

from orchestrator import daemon_serde as serde
from orchestrator.config import check_host_port
from orchestrator.registry import Registry, RegistryFull
from orchestrator.router import RouteError, Router
from protos import orchestrator_pb2 as pb
from protos import orchestrator_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: Models a registration may list at most.
MAX_MODELS = 10_000


class OrchestratorServicer(pb_grpc.OrchestratorServicer):
    """Answers Orchestrator RPCs from the registry and the router.

    Args:
        registry: the agents.
        router: serves Submit.
        heartbeat_s: the interval assigned to agents, seconds.
        run_id: the run's id (the store file's name).
        policies: the names of the active policies.
        on_register: called with the agent's name after each registration (the daemon stores it).
    """

    def __init__(
        self,
        registry: Registry,
        router: Router,
        heartbeat_s: float,
        run_id: str,
        policies: Callable[[], list[str]] = list,
        on_register: Callable[[str], None] = lambda name: None,
    ) -> None:
        self._registry = registry
        self._router = router
        self._heartbeat_s = heartbeat_s
        self._run_id = run_id
        self._policies = policies
        self._on_register = on_register
        self._started_s = time.monotonic()

    async def RegisterAgent(self, request: pb.RegisterAgentRequest, context: grpc.aio.ServicerContext):
        reg = serde.registration_from_proto(request)
        if not _NAME.match(reg.name):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"name: '{reg.name}' must match {_NAME.pattern}")
        try:
            check_host_port(reg.address, allow_zero=False)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"address: {exc}")
        if len(reg.capabilities.models) > MAX_MODELS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"capabilities.models: more than {MAX_MODELS}")
        try:
            self._registry.register(reg.name, reg.address, reg.capabilities, reg.instance_id, reg.loaded_models)
        except RegistryFull as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        self._on_register(reg.name)
        return serde.register_response(self._heartbeat_s)

    async def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext):
        beat = serde.beat_from_proto(request)
        if not self._registry.heartbeat(beat.name, beat.seq, beat.loaded_models, beat.queue_depth):
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"name: agent '{beat.name}' is not registered; register again"
            )
        return serde.heartbeat_response(self._heartbeat_s)

    async def Submit(self, request: pb.SubmitRequest, context: grpc.aio.ServicerContext):
        spec = serde.submit_from_proto(request)
        try:
            routed = await self._router.submit(spec, grpc_remaining_s=context.time_remaining())
        except RouteError as exc:
            log.info("Submit %s: %s: %s", spec.request_id, exc.code.name, exc)
            await context.abort(exc.code, str(exc))
        return serde.submit_response(routed)

    async def GetStatus(self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext):
        return serde.status_response(
            sorted(self._registry.entries.values(), key=lambda e: e.name),
            self._router.outcomes,
            self._policies(),
            self._run_id,
            time.monotonic() - self._started_s,
            time.monotonic(),
        )
