"""One table from the agent's exceptions to gRPC status codes, shared by both servicers.

Every handler runs inside :func:`rpc` (unary) or :func:`rpc_stream` (server streaming): an expected
error becomes its status code with a message naming the field or model; anything unexpected is
logged with its traceback and answered INTERNAL, and the agent keeps serving.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from node_agent.config import ConfigError
from node_agent.runtime import engine as rt
from node_agent.runtime.repository import InvalidModelSpec

log = logging.getLogger(__name__)
T = TypeVar("T")

_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (rt.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (rt.ModelNotFound, grpc.StatusCode.NOT_FOUND),
    (rt.QueueFull, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (rt.ModelNotLoaded, grpc.StatusCode.FAILED_PRECONDITION),
    (rt.ModelLoadError, grpc.StatusCode.FAILED_PRECONDITION),
    (InvalidModelSpec, grpc.StatusCode.FAILED_PRECONDITION),
    (rt.InferenceError, grpc.StatusCode.INTERNAL),
    (rt.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (rt.Cancelled, grpc.StatusCode.CANCELLED),
    (ConfigError, grpc.StatusCode.INVALID_ARGUMENT),
)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The status code and message for an expected error, None for an unexpected one."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code, str(exc)
    return None


async def _abort(context: grpc.aio.ServicerContext, method: str, exc: Exception) -> None:
    mapped = status_for(exc)
    if mapped is None:
        log.exception("%s failed unexpectedly", method)
        mapped = (grpc.StatusCode.INTERNAL, f"{method}: internal error: {type(exc).__name__}: {exc}")
    else:
        log.info("%s: %s: %s", method, mapped[0].name, mapped[1])
    await context.abort(mapped[0], mapped[1])


def rpc(
    handler: Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[T]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[T]]:
    """Wrap a unary handler so that the agent's exceptions become gRPC statuses."""

    @functools.wraps(handler)
    async def wrapped(self: Any, request: Any, context: grpc.aio.ServicerContext) -> T:
        try:
            return await handler(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, handler.__name__, exc)
            raise AssertionError("unreachable: context.abort raises") from exc

    return wrapped


def rpc_stream(
    handler: Callable[[Any, Any, grpc.aio.ServicerContext], AsyncIterator[T]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext], AsyncIterator[T]]:
    """Wrap a server-streaming handler likewise."""

    @functools.wraps(handler)
    async def wrapped(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[T]:
        try:
            async for item in handler(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, handler.__name__, exc)

    return wrapped
