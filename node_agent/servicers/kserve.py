"""The KServe v2 ``inference.GRPCInferenceService`` over the agent (core + repository extension)."""

from __future__ import annotations

import grpc

from node_agent import __version__
from node_agent.agent import Agent
from node_agent.runtime.engine import InvalidArgument
from node_agent.serde import kserve as serde
from node_agent.servicers.errors import rpc
from node_agent.servicers.timing import deadline_from
from protos import kserve_v2_pb2 as pb
from protos import kserve_v2_pb2_grpc as pb_grpc


def _check_version(version: str, field: str) -> None:
    """Each model has one version, "1"; empty means that one."""
    if version not in ("", "1"):
        raise InvalidArgument(field, f"model version '{version}' does not exist; the only version is '1'")


def _check_repository(name: str) -> None:
    if name not in ("", "default"):
        raise InvalidArgument("repository_name", f"unknown repository '{name}'; the agent has one, 'default'")


class KServeServicer(pb_grpc.GRPCInferenceServiceServicer):
    """Answers the standard inference protocol from the agent's repository and engine."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    @rpc
    async def ServerLive(self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext):
        return serde.server_live(True)

    @rpc
    async def ServerReady(self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext):
        return serde.server_ready(self._agent.ready)

    @rpc
    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext):
        return serde.server_metadata(self._agent.name, __version__)

    @rpc
    async def ModelReady(self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext):
        _check_version(request.version, "version")
        self._agent.spec(request.name)  # NOT_FOUND for a model outside the repository
        return serde.model_ready(self._agent.is_loaded(request.name))

    @rpc
    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext):
        _check_version(request.version, "version")
        return serde.model_metadata(self._agent.spec(request.name))

    @rpc
    async def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext):
        _check_version(request.model_version, "model_version")
        generation = serde.infer_request_to_generation(request)
        deadline = deadline_from(context, generation.timeout_s)
        result = await self._agent.generate(generation, deadline_monotonic_s=deadline)
        return serde.generation_to_infer_response(result)

    @rpc
    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext):
        _check_repository(request.repository_name)
        rows = [(m.name, m.loaded, m.error) for m in self._agent.list_models()]
        return serde.repository_index(rows, request.ready)

    @rpc
    async def RepositoryModelLoad(self, request: pb.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext):
        _check_repository(request.repository_name)
        if request.parameters:
            key = next(iter(request.parameters))
            raise InvalidArgument(f"parameters.{key}", "load parameters (config overrides) are not supported")
        await self._agent.load(request.model_name)
        return serde.load_response()

    @rpc
    async def RepositoryModelUnload(self, request: pb.RepositoryModelUnloadRequest, context: grpc.aio.ServicerContext):
        _check_repository(request.repository_name)
        await self._agent.unload(request.model_name)
        return serde.unload_response()
