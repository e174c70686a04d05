"""KServe v2 protobuf <-> the agent's own types. The only module that touches ``kserve_v2_pb2``.

A diffusion model is offered over KServe v2 as a model with one input and one output:

- input ``LABEL``: INT32 or INT64, shape [B] or [B, 1], one class label per image;
- output ``IMAGE``: FP32, shape [B, C, H, W], in the model's value range.

The diffusion settings travel as request parameters (``steps``, ``seed``, ``guidance``,
``scheduler``, ``eta``; Triton's ``timeout`` in microseconds is honoured as a deadline) and the
measurements come back as response parameters. An agent that emulates a WAN delay adds
``emulated_delay_s`` (not measured; inside ``total_time_s``) and its label ``emulated_delay_model``;
agents without one leave both out.
"""

from __future__ import annotations

import json
import math

import numpy as np

from node_agent.generation import GenerationRequest, MeasuredGeneration
from node_agent.runtime.engine import InvalidArgument
from node_agent.runtime.repository import ModelSpec
from protos import kserve_v2_pb2 as pb

INPUT_NAME = "LABEL"
OUTPUT_NAME = "IMAGE"
PLATFORM = "edgetb_diffusion_onnx"
#: Parameters a Triton client may add on its own; accepted and ignored (``timeout`` is honoured).
IGNORED_PARAMETERS = frozenset(
    {"priority", "sequence_id", "sequence_start", "sequence_end", "binary_data_output", "headers"}
)
KNOWN_PARAMETERS = frozenset({"steps", "seed", "guidance", "scheduler", "eta", "timeout"})
_LABEL_DTYPES = {"INT32": np.dtype("<i4"), "INT64": np.dtype("<i8")}


def _param(params: object, key: str, kinds: tuple[str, ...]) -> object | None:
    """The value of request parameter ``key`` if it is one of ``kinds``, None when absent."""
    if key not in params:  # type: ignore[operator]
        return None
    value = params[key]  # type: ignore[index]
    kind = value.WhichOneof("parameter_choice")
    if kind not in kinds:
        raise InvalidArgument(f"parameters.{key}", f"must be {' or '.join(kinds)}, got {kind}")
    return getattr(value, kind)


def _labels(request: pb.ModelInferRequest) -> tuple[int, ...]:
    if len(request.inputs) != 1:
        raise InvalidArgument("inputs", f"expected exactly one input '{INPUT_NAME}', got {len(request.inputs)}")
    tensor = request.inputs[0]
    if tensor.name != INPUT_NAME:
        raise InvalidArgument("inputs[0].name", f"expected '{INPUT_NAME}', got '{tensor.name}'")
    if tensor.datatype not in _LABEL_DTYPES:
        raise InvalidArgument("inputs[0].datatype", f"expected INT32 or INT64, got '{tensor.datatype}'")
    shape = tuple(tensor.shape)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 0:
        raise InvalidArgument("inputs[0].shape", f"expected [B] or [B, 1], got {list(shape)}")
    count = shape[0]
    if request.raw_input_contents:
        if len(request.raw_input_contents) != 1:
            raise InvalidArgument("raw_input_contents", "expected one entry, for the one input")
        dtype = _LABEL_DTYPES[tensor.datatype]
        raw = request.raw_input_contents[0]
        need_bytes = count * dtype.itemsize
        if len(raw) != need_bytes:
            raise InvalidArgument(
                "raw_input_contents[0]",
                f"holds {len(raw)} bytes; shape {list(shape)} of {tensor.datatype} needs {need_bytes}",
            )
        values = np.frombuffer(raw, dtype=dtype).tolist()
    else:
        contents = tensor.contents
        values = list(contents.int_contents) if tensor.datatype == "INT32" else list(contents.int64_contents)
        if len(values) != count:
            raise InvalidArgument("inputs[0].contents", f"holds {len(values)} values, shape says {count}")
    return tuple(int(v) for v in values)


def infer_request_to_generation(request: pb.ModelInferRequest) -> GenerationRequest:
    """Decode a ModelInfer request.

    Raises:
        InvalidArgument: naming the offending field (``inputs[0].shape``, ``parameters.steps``, ...).
    """
    for key in request.parameters:
        if key not in KNOWN_PARAMETERS and key not in IGNORED_PARAMETERS:
            raise InvalidArgument(
                f"parameters.{key}", f"unknown parameter; known: {', '.join(sorted(KNOWN_PARAMETERS))}"
            )
    for i, wanted in enumerate(request.outputs):
        if wanted.name != OUTPUT_NAME:
            raise InvalidArgument(f"outputs[{i}].name", f"the only output is '{OUTPUT_NAME}'")
    params = request.parameters
    steps = _param(params, "steps", ("int64_param", "uint64_param"))
    seed = _param(params, "seed", ("int64_param", "uint64_param"))
    guidance = _param(params, "guidance", ("double_param", "int64_param"))
    scheduler = _param(params, "scheduler", ("string_param",))
    eta = _param(params, "eta", ("double_param", "int64_param"))
    timeout_us = _param(params, "timeout", ("int64_param", "uint64_param"))
    if seed is not None and not 0 <= int(seed) < 2**63:  # type: ignore[call-overload]
        raise InvalidArgument("parameters.seed", f"must be in [0, 2^63), got {seed}")
    if timeout_us is not None and int(timeout_us) <= 0:  # type: ignore[call-overload]
        raise InvalidArgument("parameters.timeout", f"must be > 0 microseconds, got {timeout_us}")
    return GenerationRequest(
        model=request.model_name,
        labels=_labels(request),
        steps=None if steps is None else int(steps),  # type: ignore[call-overload]
        seed=0 if seed is None else int(seed),  # type: ignore[call-overload]
        guidance=None if guidance is None else float(guidance),  # type: ignore[arg-type]
        scheduler=None if scheduler is None else str(scheduler),
        eta=0.0 if eta is None else float(eta),  # type: ignore[arg-type]
        request_id=request.id,
        timeout_s=None if timeout_us is None else int(timeout_us) / 1e6,  # type: ignore[call-overload]
    )


def generation_to_infer_response(result: MeasuredGeneration) -> pb.ModelInferResponse:
    """Encode a finished generation: the images as raw FP32 and the measurements as parameters."""
    images = np.ascontiguousarray(result.images, dtype="<f4")
    response = pb.ModelInferResponse(model_name=result.model, model_version="1", id=result.request_id)
    response.outputs.add(name=OUTPUT_NAME, datatype="FP32", shape=list(images.shape))
    response.raw_output_contents.append(images.tobytes())
    p = response.parameters
    p["agent"].string_param = result.agent
    p["steps"].int64_param = result.steps
    p["seed"].int64_param = result.seed
    p["guidance"].double_param = result.guidance
    p["scheduler"].string_param = result.scheduler
    p["queue_time_s"].double_param = result.queue_time_s
    p["compute_time_s"].double_param = result.compute_time_s
    p["decode_time_s"].double_param = result.decode_time_s
    p["total_time_s"].double_param = result.total_time_s
    p["step_times_s"].string_param = json.dumps([round(t, 9) for t in result.step_times_s])
    if result.energy_j is not None and math.isfinite(result.energy_j):
        p["energy_j"].double_param = result.energy_j
    p["energy_source"].string_param = result.energy_source
    p["energy_method"].string_param = result.energy_method
    p["peak_mem_bytes"].int64_param = result.peak_mem_bytes
    p["peak_mem_source"].string_param = result.peak_mem_source
    if result.emulated_delay_model:
        p["emulated_delay_s"].double_param = result.emulated_delay_s
        p["emulated_delay_model"].string_param = result.emulated_delay_model
    return response


def model_metadata(spec: ModelSpec) -> pb.ModelMetadataResponse:
    """The KServe tensor metadata of a diffusion model."""
    response = pb.ModelMetadataResponse(name=spec.name, versions=["1"], platform=PLATFORM)
    response.inputs.add(name=INPUT_NAME, datatype="INT32", shape=[-1])
    response.outputs.add(name=OUTPUT_NAME, datatype="FP32", shape=[-1, *spec.image_shape])
    return response


def server_metadata(name: str, version: str) -> pb.ServerMetadataResponse:
    return pb.ServerMetadataResponse(name=name, version=version, extensions=["model_repository", "edgetb_diffusion"])


def repository_index(entries: list[tuple[str, bool, str]], ready_only: bool) -> pb.RepositoryIndexResponse:
    """Encode (name, ready, reason) rows; ``ready_only`` keeps the loaded models only."""
    response = pb.RepositoryIndexResponse()
    for name, ready, reason in entries:
        if ready_only and not ready:
            continue
        response.models.add(name=name, version="1", state="READY" if ready else "UNAVAILABLE", reason=reason)
    return response


def server_live(live: bool) -> pb.ServerLiveResponse:
    return pb.ServerLiveResponse(live=live)


def server_ready(ready: bool) -> pb.ServerReadyResponse:
    return pb.ServerReadyResponse(ready=ready)


def model_ready(ready: bool) -> pb.ModelReadyResponse:
    return pb.ModelReadyResponse(ready=ready)


def load_response() -> pb.RepositoryModelLoadResponse:
    return pb.RepositoryModelLoadResponse()


def unload_response() -> pb.RepositoryModelUnloadResponse:
    return pb.RepositoryModelUnloadResponse()
