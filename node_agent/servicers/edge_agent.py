"""The EdgeAgent service: repository, generation and telemetry over the agent's own API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from node_agent.agent import Agent
from node_agent.runtime.engine import InvalidArgument
from node_agent.serde import agent as serde
from node_agent.servicers.errors import rpc, rpc_stream
from node_agent.servicers.timing import deadline_from
from protos import edge_agent_pb2 as pb
from protos import edge_agent_pb2_grpc as pb_grpc

MIN_BATCH = 10
MAX_BATCH = 100


class EdgeAgentServicer(pb_grpc.EdgeAgentServicer):
    """Answers EdgeAgent RPCs from the agent."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    @rpc
    async def GetInfo(self, request: pb.GetInfoRequest, context: grpc.aio.ServicerContext):
        return serde.agent_info(self._agent.status())

    @rpc
    async def ListModels(self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext):
        return serde.model_list(self._agent.list_models())

    @rpc
    async def LoadModel(self, request: pb.LoadModelRequest, context: grpc.aio.ServicerContext):
        report, already_loaded = await self._agent.load(request.name)
        return serde.load_response(report, already_loaded)

    @rpc
    async def UnloadModel(self, request: pb.UnloadModelRequest, context: grpc.aio.ServicerContext):
        freed_bytes = await self._agent.unload(request.name)
        return serde.unload_response(request.name, freed_bytes)

    @rpc
    async def Generate(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext):
        generation = serde.generate_request(request)
        result = await self._agent.generate(generation, deadline_monotonic_s=deadline_from(context))
        return serde.generate_response(result)

    @rpc_stream
    async def StreamTelemetry(
        self, request: pb.StreamTelemetryRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TelemetryBatch]:
        """Sends ``batch_size`` samples per message, from ``from_seq`` on, until the client leaves.

        A client resumes by asking for the ``next_seq`` of the last batch it got. Samples that had
        already left the bounded log are counted in ``dropped`` of the first batch, never hidden.
        """
        batch_size = request.batch_size or MIN_BATCH
        if not MIN_BATCH <= batch_size <= MAX_BATCH:
            raise InvalidArgument("batch_size", f"{batch_size} is outside {MIN_BATCH}..{MAX_BATCH}")
        telemetry = self._agent.telemetry_log
        seq = request.from_seq or telemetry.latest_seq + 1
        while not self._agent.closing:
            read = telemetry.read_from(seq, batch_size)
            if len(read.samples) < batch_size:
                # Wait for the rest of the batch (woken by the sampler's append; the timeout lets
                # the loop notice a shutdown or a client that left).
                first = read.samples[0].seq if read.samples else read.next_seq
                await telemetry.wait_beyond(first + batch_size - 2, timeout_s=1.0)
                if context.done():
                    return
                continue
            yield serde.telemetry_batch(self._agent.name, read.samples, read.next_seq, read.missed(seq))
            seq = read.next_seq

    @rpc
    async def SetPowerMode(self, request: pb.SetPowerModeRequest, context: grpc.aio.ServicerContext):
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "SetPowerMode: power modes and caps are not implemented yet on any device backend",
        )
