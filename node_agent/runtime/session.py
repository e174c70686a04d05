"""ONNX Runtime sessions: provider choice, session options, and the I/O contract check at load time.

The contract (``profiles/models/README.md``): ``denoiser.onnx`` takes ``x`` float32 [B, C, H, W],
``t`` int64 [B], ``y`` int64 [B] and returns ``eps`` float32 [B, C, H, W]; ``decoder.onnx`` maps
``z`` [B, Cl, Hl, Wl] to ``image`` [B, C, H, W]; ``encoder.onnx`` maps ``image`` to ``z``. The batch
axis is dynamic everywhere. Every failure to create a session becomes a :class:`ModelLoadError`
that names the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

from node_agent.runtime.errors import ModelLoadError
from node_agent.runtime.repository import ModelSpec

GPU_DEVICE_KINDS = ("nvidia", "jetson")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
CPU_PROVIDER = "CPUExecutionProvider"
MAX_ONNX_BYTES = 2 * 1024**3  # protobuf's limit for a single file without external data
_FLOAT, _INT64 = "tensor(float)", "tensor(int64)"


def choose_providers(device_kind: str, available: Sequence[str] | None = None) -> list[str]:
    """Execution providers to try, best first; CPU is always last.

    Args:
        device_kind: The agent's device backend (``cpu``, ``nvidia``, ``jetson``, ``simulated``).
        available: Providers this ONNX Runtime build has (default: ``ort.get_available_providers()``).

    Returns:
        TensorRT and/or CUDA (when built in and the device is ``nvidia`` or ``jetson``), then CPU.
    """
    available = list(ort.get_available_providers() if available is None else available)
    chosen = [p for p in GPU_PROVIDERS if p in available] if device_kind in GPU_DEVICE_KINDS else []
    return [*chosen, CPU_PROVIDER]


def session_options(intra_op_threads: int = 0) -> ort.SessionOptions:
    """Options for every session: sequential execution, full graph optimisation, quiet logs.

    Args:
        intra_op_threads: Threads inside one operator (0 = ONNX Runtime's default, one per core).
    """
    if intra_op_threads < 0:
        raise ValueError(f"intra_op_threads must be >= 0, got {intra_op_threads}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only
    return opts


def expected_io(spec: ModelSpec, role: str) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """Contract of one file: ``(inputs, outputs)``, each name -> (ORT type, shape without batch)."""
    image, work = spec.image_shape, spec.denoise_shape
    latent = spec.latent.shape if spec.latent is not None else work
    if role == "denoiser":
        return {"x": (_FLOAT, work), "t": (_INT64, ()), "y": (_INT64, ())}, {"eps": (_FLOAT, work)}
    if role == "decoder":
        return {"z": (_FLOAT, latent)}, {"image": (_FLOAT, image)}
    if role == "encoder":
        return {"image": (_FLOAT, image)}, {"z": (_FLOAT, latent)}
    raise ValueError(f"unknown model file role {role!r}")


def _check_arg(path: Path, what: str, arg: ort.NodeArg, want_type: str, want_shape: tuple) -> None:
    where = f"{path}: {what} {arg.name!r}"
    if arg.type != want_type:
        raise ModelLoadError(f"{where}: type {arg.type}, contract says {want_type}")
    shape = list(arg.shape or [])
    if len(shape) != 1 + len(want_shape):
        raise ModelLoadError(f"{where}: rank {len(shape)}, contract says {1 + len(want_shape)} (batch first)")
    if isinstance(shape[0], int) and shape[0] > 0:
        raise ModelLoadError(f"{where}: batch axis is fixed to {shape[0]}, contract says dynamic")
    for axis, (got, want) in enumerate(zip(shape[1:], want_shape, strict=True), start=1):
        if isinstance(got, int) and got > 0 and got != want:
            raise ModelLoadError(f"{where}: axis {axis} is {got}, model.toml says {want}")


def check_contract(session: ort.InferenceSession, spec: ModelSpec, role: str, path: Path) -> None:
    """Check a session's inputs and outputs against the contract and the spec's shapes.

    Raises:
        ModelLoadError: Names, element types, ranks or static sizes differ from the contract.
    """
    want_in, want_out = expected_io(spec, role)
    got_in = {arg.name: arg for arg in session.get_inputs()}
    if set(got_in) != set(want_in):
        raise ModelLoadError(f"{path}: {role} inputs are {sorted(got_in)}, contract says {sorted(want_in)}")
    got_out = {arg.name: arg for arg in session.get_outputs()}
    missing = sorted(set(want_out) - set(got_out))
    if missing:
        raise ModelLoadError(f"{path}: {role} outputs are {sorted(got_out)}, contract needs {missing}")
    for name, (want_type, want_shape) in want_in.items():
        _check_arg(path, "input", got_in[name], want_type, want_shape)
    for name, (want_type, want_shape) in want_out.items():
        _check_arg(path, "output", got_out[name], want_type, want_shape)


def create_session(
    spec: ModelSpec, role: str, providers: Sequence[str], intra_op_threads: int = 0
) -> ort.InferenceSession:
    """Create and contract-check the session of one of the model's files.

    Args:
        spec: The model.
        role: ``denoiser``, ``decoder`` or ``encoder``.
        providers: Execution providers, best first (see :func:`choose_providers`).
        intra_op_threads: Threads inside one operator (0 = ONNX Runtime's default).

    Raises:
        ModelLoadError: The file is not in the spec, missing, too large, not a loadable ONNX model,
            or breaks the contract.
    """
    path = spec.files.get(role)
    if path is None:
        raise ModelLoadError(f"{spec.spec_path}: files.{role}: not given")
    try:
        size_bytes = path.stat().st_size
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read {role}: {exc.strerror or exc}") from exc
    if size_bytes > MAX_ONNX_BYTES:
        raise ModelLoadError(f"{path}: {size_bytes} bytes, limit {MAX_ONNX_BYTES}")
    try:
        session = ort.InferenceSession(
            str(path), sess_options=session_options(intra_op_threads), providers=list(providers)
        )
    except Exception as exc:  # ORT raises pybind11 classes (InvalidProtobuf, Fail, NoSuchFile, ...)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path}: cannot load {role}: {first_line}") from exc
    check_contract(session, spec, role, path)
    return session
