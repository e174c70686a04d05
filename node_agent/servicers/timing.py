"""Request deadlines: the gRPC deadline and a time limit carried in the request, whichever is first."""

from __future__ import annotations

import time

import grpc


def deadline_from(context: grpc.aio.ServicerContext, timeout_s: float | None = None) -> float | None:
    """The request's deadline on ``time.monotonic()``'s clock, None when it has none.

    Args:
        context: the RPC's context; its ``time_remaining()`` is the client's gRPC deadline.
        timeout_s: a limit from the request body (KServe's ``timeout`` parameter), in seconds.
    """
    now = time.monotonic()
    limits = [timeout_s] if timeout_s is not None else []
    remaining = context.time_remaining()
    if remaining is not None:
        limits.append(remaining)
    return now + min(limits) if limits else None
