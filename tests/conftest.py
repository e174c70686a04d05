"""Shared test fixtures: tiny ONNX models and model folders (no trained models needed).

Fixtures:
    write_model: ``write_model(root, name, ...) -> Path`` writes ``<root>/<name>/model.toml`` and
        tiny ONNX files that follow ``profiles/models/README.md``.
    onnx_kit: the ONNX builders below, for tests that need unusual graphs.

The affine denoiser computes ``eps = a * x + b * float(y) + c * float(t)`` (broadcast over C, H, W),
so guided combinations can be checked by hand.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64


def save_onnx(path: Path, nodes, inputs, outputs, initializers=()) -> Path:
    """Check and write a single-graph ONNX model."""
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def tensor_info(name: str, elem: int, shape: tuple) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, list(shape))


def const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def denoiser_io(shape: tuple[int, int, int], x_name="x", t_name="t", y_name="y", batch="batch"):
    """The contract's denoiser inputs and output (batch axis symbolic)."""
    inputs = [
        tensor_info(x_name, FLOAT, (batch, *shape)),
        tensor_info(t_name, INT64, (batch,)),
        tensor_info(y_name, INT64, (batch,)),
    ]
    return inputs, [tensor_info("eps", FLOAT, (batch, *shape))]


def _per_item(src: str, name: str) -> list[onnx.NodeProto]:
    """int64 [B] -> float [B, 1, 1, 1] named ``name``."""
    return [
        helper.make_node("Cast", [src], [f"{name}_f"], to=FLOAT),
        helper.make_node("Unsqueeze", [f"{name}_f", "axes_123"], [name]),
    ]


def affine_denoiser(
    path: Path, shape: tuple[int, int, int], a: float = 0.5, b: float = 0.01, c: float = 1e-4, **io: Any
) -> Path:
    """``eps = a * x + b * float(y) + c * float(t)``, float32."""
    inputs, outputs = denoiser_io(shape, **io)
    x, t, y = (i.name for i in inputs)
    nodes = [
        *_per_item(y, "y4"),
        *_per_item(t, "t4"),
        helper.make_node("Mul", [x, "a"], ["xa"]),
        helper.make_node("Mul", ["y4", "b"], ["yb"]),
        helper.make_node("Mul", ["t4", "c"], ["tc"]),
        helper.make_node("Add", ["xa", "yb"], ["s1"]),
        helper.make_node("Add", ["s1", "tc"], ["eps"]),
    ]
    inits = [
        const("axes_123", np.array([1, 2, 3], np.int64)),
        const("a", np.float32(a)),
        const("b", np.float32(b)),
        const("c", np.float32(c)),
    ]
    return save_onnx(path, nodes, inputs, outputs, inits)


def affine_eps(x: np.ndarray, t: np.ndarray, y: np.ndarray, a=0.5, b=0.01, c=1e-4) -> np.ndarray:
    """What :func:`affine_denoiser` computes, in numpy float32."""
    y4 = y.astype(np.float32)[:, None, None, None]
    t4 = t.astype(np.float32)[:, None, None, None]
    return (x * np.float32(a) + y4 * np.float32(b)) + t4 * np.float32(c)


def gather_denoiser(path: Path, shape: tuple[int, int, int], table_size: int) -> Path:
    """``eps = x * table[t]`` with a table of ``table_size`` rows: ONNX Runtime fails for ``t >= table_size``."""
    inputs, outputs = denoiser_io(shape)
    nodes = [
        helper.make_node("Gather", ["table", "t"], ["g"], axis=0),
        helper.make_node("Unsqueeze", ["g", "axes_123"], ["g4"]),
        *_per_item("y", "y4"),
        helper.make_node("Mul", ["y4", "zero"], ["y0"]),
        helper.make_node("Mul", ["x", "g4"], ["xg"]),
        helper.make_node("Add", ["xg", "y0"], ["eps"]),
    ]
    inits = [
        const("table", np.full(table_size, 0.5, np.float32)),
        const("axes_123", np.array([1, 2, 3], np.int64)),
        const("zero", np.float32(0.0)),
    ]
    return save_onnx(path, nodes, inputs, outputs, inits)


def linear_decoder(
    path: Path, latent_shape: tuple[int, int, int], image_shape: tuple[int, int, int], weight: np.ndarray
) -> Path:
    """``image = reshape(reshape(z, [B, L]) @ weight, [B, C, H, W])``; ``weight`` float32 [L, P]."""
    nodes = [
        helper.make_node("Reshape", ["z", "flat_shape"], ["zf"]),
        helper.make_node("MatMul", ["zf", "w"], ["pf"]),
        helper.make_node("Reshape", ["pf", "image_shape"], ["image"]),
    ]
    inits = [
        const("flat_shape", np.array([-1, int(np.prod(latent_shape))], np.int64)),
        const("w", weight.astype(np.float32)),
        const("image_shape", np.array([-1, *image_shape], np.int64)),
    ]
    inputs = [tensor_info("z", FLOAT, ("batch", *latent_shape))]
    outputs = [tensor_info("image", FLOAT, ("batch", *image_shape))]
    return save_onnx(path, nodes, inputs, outputs, inits)


def decoder_weight(latent_shape, image_shape) -> np.ndarray:
    """A fixed, non-trivial decoder weight [L, P]."""
    rng = np.random.default_rng(123)
    return rng.standard_normal((int(np.prod(latent_shape)), int(np.prod(image_shape)))).astype(np.float32) * 0.3


def matmul_chain_denoiser(path: Path, shape: tuple[int, int, int], width: int = 1024, depth: int = 12) -> Path:
    """``eps = tanh(x W_in (W)^depth W_out) + 0 * y`` with fixed random weights: slow on purpose."""
    inputs, outputs = denoiser_io(shape)
    flat = int(np.prod(shape))
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Reshape", ["x", "flat"], ["h0"]), helper.make_node("MatMul", ["h0", "w_in"], ["h1"])]
    for i in range(depth):
        nodes.append(helper.make_node("MatMul", [f"h{i + 1}", "w"], [f"h{i + 2}"]))
    nodes += [
        helper.make_node("MatMul", [f"h{depth + 1}", "w_out"], ["o"]),
        helper.make_node("Tanh", ["o"], ["o_t"]),
        helper.make_node("Reshape", ["o_t", "img"], ["o4"]),
        helper.make_node("Cast", ["y"], ["y_f"], to=FLOAT),
        helper.make_node("Mul", ["y_f", "zero"], ["y0"]),
        helper.make_node("Unsqueeze", ["y0", "axes_123"], ["y4"]),
        helper.make_node("Add", ["o4", "y4"], ["eps"]),
    ]
    inits = [
        const("flat", np.array([-1, flat], np.int64)),
        const("img", np.array([-1, *shape], np.int64)),
        const("w_in", (rng.standard_normal((flat, width)) / np.sqrt(flat)).astype(np.float32)),
        const("w", (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)),
        const("w_out", (rng.standard_normal((width, flat)) / np.sqrt(width)).astype(np.float32)),
        const("zero", np.float32(0.0)),
        const("axes_123", np.array([1, 2, 3], np.int64)),
    ]
    return save_onnx(path, nodes, inputs, outputs, inits)


def sim_profile_toml(
    name: str = "test-sim",
    idle_power_w: float = 5.0,
    max_power_w: float = 15.0,
    mem_total_bytes: int = 8_000_000_000,
    idle_mem_used_bytes: int = 1_000_000_000,
    max_mem_used_bytes: int = 2_000_000_000,
) -> str:
    """A device profile for the ``simulated`` backend (W, bytes), so energy is ``modeled`` anywhere."""
    return (
        f'[device]\nname = "{name}"\nidle_power_w = {idle_power_w}\nmax_power_w = {max_power_w}\n'
        f"mem_total_bytes = {mem_total_bytes}\nidle_mem_used_bytes = {idle_mem_used_bytes}\n"
        f"max_mem_used_bytes = {max_mem_used_bytes}\n"
    )


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(type(value))


def to_toml(doc: dict[str, Any]) -> str:
    """Minimal TOML writer: top-level keys, then one level of tables."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for key, table in doc.items():
        if isinstance(table, dict):
            lines += ["", f"[{key}]", *(f"{k} = {_toml_value(v)}" for k, v in table.items())]
    return "\n".join(lines) + "\n"


def spec_doc(name: str, kind: str = "pixel", *, image=(1, 8, 8), latent=(4, 2, 2), steps_T: int = 1000) -> dict:
    """A valid model.toml as a dict (edit it, then pass it to write_model)."""
    doc: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "description": "test model",
        "image": {"channels": image[0], "height": image[1], "width": image[2], "value_min": -1.0, "value_max": 1.0},
        "classes": {"count": 10, "names": [str(i) for i in range(10)], "null_label": 10},
        "schedule": {
            "num_train_timesteps": steps_T,
            "beta_schedule": "linear",
            "beta_start": 0.0001,
            "beta_end": 0.02,
            "prediction_type": "epsilon",
            "clip_sample": False,
            "clip_sample_range": 1.0,
        },
        "defaults": {"steps": min(10, steps_T), "scheduler": "ddim", "guidance": 2.0, "max_batch": 8},
        "files": {"denoiser": "denoiser.onnx"},
        "training": {"arch": "affine", "seed": 0},
    }
    if kind == "latent":
        doc["files"]["decoder"] = "decoder.onnx"
        doc["latent"] = {"channels": latent[0], "height": latent[1], "width": latent[2], "scale": 0.5}
    return doc


def write_model_folder(
    root: Path,
    name: str,
    kind: str = "pixel",
    *,
    doc: dict | None = None,
    denoiser: Callable[[Path, tuple[int, int, int]], Any] | None = None,
    steps_T: int = 1000,
) -> Path:
    """Write ``<root>/<name>/`` with a model.toml and tiny ONNX files; returns the folder."""
    doc = doc or spec_doc(name, kind, steps_T=steps_T)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    image = tuple(doc["image"][k] for k in ("channels", "height", "width"))
    work = image
    if kind == "latent":
        work = tuple(doc["latent"][k] for k in ("channels", "height", "width"))
        linear_decoder(folder / "decoder.onnx", work, image, decoder_weight(work, image))
    (denoiser or affine_denoiser)(folder / "denoiser.onnx", work)
    (folder / "model.toml").write_text(to_toml(doc), encoding="utf-8")
    return folder


@pytest.fixture(scope="session", name="sim_profile_toml")
def sim_profile_toml_fixture() -> Callable[..., str]:
    """:func:`sim_profile_toml`: keyword overrides of the test device profile."""
    return sim_profile_toml


@pytest.fixture(scope="session")
def write_model() -> Callable[..., Path]:
    return write_model_folder


@pytest.fixture(scope="session")
def onnx_kit() -> types.SimpleNamespace:
    return types.SimpleNamespace(
        save_onnx=save_onnx,
        tensor_info=tensor_info,
        const=const,
        denoiser_io=denoiser_io,
        affine_denoiser=affine_denoiser,
        affine_eps=affine_eps,
        gather_denoiser=gather_denoiser,
        matmul_chain_denoiser=matmul_chain_denoiser,
        linear_decoder=linear_decoder,
        decoder_weight=decoder_weight,
        spec_doc=spec_doc,
        to_toml=to_toml,
        FLOAT=FLOAT,
        INT64=INT64,
    )


#: The synthetic profile's quality (class probability) per step count: saturating from 2 steps.
SYNTHETIC_CLASS_PROB = {1: 0.1, 2: 0.85, 4: 0.93, 8: 0.95, 16: 0.95, 32: 0.95}


def synthetic_profile(
    model: str = "m",
    device: str = "dev",
    *,
    energy_w: float | None = None,
    batches: tuple[int, ...] = (1,),
    latency_a_s: float = 0.002,
    per_step_s: float = 0.0005,
    load_time_s: float = 0.05,
    mem_bytes: int = 4_000_000,
):
    """A :class:`profiles.profile.ModelProfile` with known numbers: latency ``a + per_step * steps * batch``
    (compute = the per-step part), energy ``energy_w`` x compute (None: unavailable), quality per
    :data:`SYNTHETIC_CLASS_PROB` (std 0.1) at batch 1, FD ``30 (1 - q) + 0.3``."""
    from profiles.profile import ModelProfile

    points = []
    for batch in batches:
        for s, q in SYNTHETIC_CLASS_PROB.items():
            compute = per_step_s * s * batch
            point: dict[str, Any] = {
                "steps": s, "batch": batch, "requests": 30, "valid": True, "latency_s": latency_a_s + compute,
                "latency_s_std": 1e-4, "latency_s_p50": latency_a_s + compute,
                "latency_s_p99": latency_a_s + compute + 3e-4, "compute_s": compute, "compute_s_std": 1e-5 * s,
                "energy_j": None if energy_w is None else energy_w * compute,
            }  # fmt: skip
            if batch == 1:
                point.update(quality_images=100, accuracy=q, class_prob=q, class_prob_std=0.1, fd=30 * (1 - q) + 0.3)
            points.append(point)
    provenance = {"date": "2026-11-23T00:00:00+00:00", "seed": 0, "device_kind": "cpu", "device_name": "test cpu"}
    load = {"load_time_s": load_time_s, "mem_bytes": mem_bytes}
    return ModelProfile.from_points(model, device, provenance, load, points)


@pytest.fixture(scope="session", name="synthetic_profile")
def synthetic_profile_fixture() -> Callable[..., Any]:
    """:func:`synthetic_profile`: a model profile with known latency, energy and quality."""
    return synthetic_profile


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch intra-op thread during the test, as training runs use (small networks run several times slower
    with two threads on a busy 2-core box); the previous setting is restored."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
