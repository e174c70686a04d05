"""Exceptions of the runtime; the servicers map them to gRPC status codes.

Suggested mapping: ``InvalidArgument`` -> INVALID_ARGUMENT, ``ModelNotFound`` -> NOT_FOUND,
``ModelNotLoaded`` / ``ModelLoadError`` / ``InvalidModelSpec`` -> FAILED_PRECONDITION,
``QueueFull`` -> RESOURCE_EXHAUSTED, ``DeadlineExceeded`` -> DEADLINE_EXCEEDED,
``Cancelled`` -> CANCELLED, ``InferenceError`` -> INTERNAL.
"""

from __future__ import annotations


class RuntimeFailure(Exception):
    """Base class of every runtime error."""


class InvalidModelSpec(RuntimeFailure, ValueError):
    """A ``model.toml`` (or the folder holding it) breaks the repository contract."""


class ModelNotFound(RuntimeFailure, LookupError):
    """No model of that name in the repository (or the name is not a valid model name)."""


class ModelLoadError(RuntimeFailure):
    """A model could not be loaded (missing or corrupt ONNX, contract mismatch, invalid spec)."""


class ModelNotLoaded(RuntimeFailure):
    """The model is not loaded (never loaded, unloaded, or unloaded while the request was queued)."""


class InvalidArgument(RuntimeFailure, ValueError):
    """A request parameter is out of range.

    Attributes:
        field: The offending field (``steps``, ``labels``, ``batch``, ``guidance``, ...).
        message: What is wrong with it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class QueueFull(RuntimeFailure):
    """The model's bounded request queue is full; the request was not accepted."""


class Cancelled(RuntimeFailure):
    """Generation stopped between denoising steps.

    Attributes:
        reason: Why (as returned by the ``should_stop`` callback).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DeadlineExceeded(RuntimeFailure):
    """The request's deadline passed (in the queue or between denoising steps)."""


class InferenceError(RuntimeFailure):
    """ONNX Runtime failed while running a model; only the request that hit it fails."""
