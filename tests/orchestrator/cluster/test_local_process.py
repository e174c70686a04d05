"""Child processes started by ``orchestrator.local`` while gRPC is busy in the parent (that they die with
the parent: ``test_a_hard_killed_up_leaves_no_child_behind``)."""

from __future__ import annotations

import asyncio
import sys
import threading

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from orchestrator.local import start_process

READY = "print('listening on 127.0.0.1:1', flush=True)"


@pytest.fixture
def busy_grpc():
    """A grpc.aio server and a client polling it every 10 ms on a loop thread, as in the daemon."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start():
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        return server, channel

    async def poll(channel):
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            await stub.Check(health_pb2.HealthCheckRequest())
            await asyncio.sleep(0.01)

    server, channel = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    poller = asyncio.run_coroutine_threadsafe(poll(channel), loop)
    try:
        yield
    finally:
        poller.cancel()

        async def stop():
            await channel.close()
            await server.stop(0)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_children_that_die_with_the_parent_start_while_grpc_is_busy(busy_grpc) -> None:
    """A ``preexec_fn`` made about 1 child in 10 crash before exec here (gRPC's fork handlers,
    grpc/grpc#43055): 60 in a row all start."""
    for i in range(60):
        child = start_process(f"child-{i}", [sys.executable, "-c", READY], timeout_s=20, die_with_parent=True)
        assert child.address == "127.0.0.1:1"
        assert child.process.wait(timeout=20) == 0
