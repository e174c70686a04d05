"""KServe v2 protobuf <-> the orchestrator's own types. The only orchestrator module that touches
``kserve_v2_pb2``.

A diffusion model over KServe v2 has input ``LABEL`` (INT32 [B], one class per image) and output
``IMAGE`` (FP32 [B, ...]). Requests carry ``steps`` and ``seed`` as parameters. Only the standard
protocol fields are required of a response; the edgetb extras (``queue_time_s``,
``compute_time_s``, ``energy_j``, ``energy_source`` response parameters) are read when present and
are ``None`` (energy: source ``unavailable``) when absent, never invented.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protos import kserve_v2_pb2 as pb

INPUT_NAME = "LABEL"
OUTPUT_NAME = "IMAGE"
_NUMERIC = ("double_param", "int64_param", "uint64_param")


class BadResponse(ValueError):
    """A response that does not hold what the request asked for (the message says what)."""


@dataclass(frozen=True)
class InferReply:
    """What the harness needs from one query's response (ModelInfer here; the EdgeAgent target
    fills the same type from a Generate response).

    Attributes:
        images: images in the ``IMAGE`` output (its first dimension).
        queue_time_s: server-side queueing time, s; None when the server does not report it.
        compute_time_s: server-side compute time, s; None when not reported.
        energy_j: device energy of the request, J; None when not reported.
        energy_source: source label of ``energy_j``, ``unavailable`` when absent.
    """

    images: int
    queue_time_s: float | None
    compute_time_s: float | None
    energy_j: float | None
    energy_source: str


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelMeta:
    """A model's KServe metadata."""

    name: str
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def infer_request(model: str, labels: list[int], steps: int, seed: int, request_id: str = "") -> pb.ModelInferRequest:
    """A ModelInfer request: ``LABEL`` as raw little-endian INT32, ``steps``/``seed`` as parameters."""
    request = pb.ModelInferRequest(model_name=model, id=request_id)
    request.inputs.add(name=INPUT_NAME, datatype="INT32", shape=[len(labels)])
    request.raw_input_contents.append(np.asarray(labels, dtype="<i4").tobytes())
    request.outputs.add(name=OUTPUT_NAME)
    request.parameters["steps"].int64_param = int(steps)
    request.parameters["seed"].int64_param = int(seed)
    return request


def _number(params: object, key: str) -> float | None:
    if key not in params:  # type: ignore[operator]
        return None
    value = params[key]  # type: ignore[index]
    kind = value.WhichOneof("parameter_choice")
    return float(getattr(value, kind)) if kind in _NUMERIC else None


def _text(params: object, key: str) -> str | None:
    if key not in params:  # type: ignore[operator]
        return None
    value = params[key]  # type: ignore[index]
    return value.string_param if value.WhichOneof("parameter_choice") == "string_param" else None


def infer_reply(response: pb.ModelInferResponse, batch: int) -> InferReply:
    """Decode a ModelInfer response to a request of ``batch`` labels.

    Raises:
        BadResponse: no ``IMAGE`` output, or its first dimension is not ``batch``.
    """
    outputs = {o.name: o for o in response.outputs}
    if OUTPUT_NAME not in outputs:
        raise BadResponse(f"response has outputs {sorted(outputs)}, no '{OUTPUT_NAME}'")
    shape = list(outputs[OUTPUT_NAME].shape)
    if not shape or shape[0] != batch:
        raise BadResponse(f"output '{OUTPUT_NAME}' has shape {shape}; expected {batch} images first")
    params = response.parameters
    energy_j = _number(params, "energy_j")
    source = _text(params, "energy_source")
    return InferReply(
        images=batch,
        queue_time_s=_number(params, "queue_time_s"),
        compute_time_s=_number(params, "compute_time_s"),
        energy_j=energy_j,
        energy_source=(source or "unlabelled") if energy_j is not None else "unavailable",
    )


def server_live_request() -> pb.ServerLiveRequest:
    return pb.ServerLiveRequest()


def server_metadata_request() -> pb.ServerMetadataRequest:
    return pb.ServerMetadataRequest()


def server_metadata(response: pb.ServerMetadataResponse) -> tuple[str, str]:
    """(server name, version)."""
    return response.name, response.version


def model_ready_request(model: str) -> pb.ModelReadyRequest:
    return pb.ModelReadyRequest(name=model)


def model_metadata_request(model: str) -> pb.ModelMetadataRequest:
    return pb.ModelMetadataRequest(name=model)


def model_meta(response: pb.ModelMetadataResponse) -> ModelMeta:
    def specs(tensors: object) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec(t.name, t.datatype, tuple(t.shape)) for t in tensors)  # type: ignore[attr-defined]

    return ModelMeta(response.name, response.platform, specs(response.inputs), specs(response.outputs))


def load_request(model: str) -> pb.RepositoryModelLoadRequest:
    return pb.RepositoryModelLoadRequest(model_name=model)


def unload_request(model: str) -> pb.RepositoryModelUnloadRequest:
    return pb.RepositoryModelUnloadRequest(model_name=model)
