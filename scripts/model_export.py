"""ONNX export and ``model.toml`` writing for the shipped digit models (used by ``train_models.py``).

The files follow the model repository contract in ``profiles/models/README.md``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

OPSET = 18
"""ONNX opset of the exported files (the torch exporter's native one; ORT >= 1.14 runs it)."""

BATCH = torch.export.Dim("batch", min=1, max=4096)


def export_onnx(
    module: nn.Module,
    example: Sequence[torch.Tensor],
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    atol: float = 1e-4,
) -> None:
    """Export ``module`` with a dynamic batch axis and check ORT reproduces torch on ``example``.

    Parameter names are kept as initializer names, which :func:`digits_models.load_onnx_weights`
    relies on.

    Args:
        module: Module to export (put in eval mode here).
        example: Example inputs, batch axis first.
        path: Output ``.onnx`` file.
        input_names: ONNX input names, one per example input.
        output_names: ONNX output names, one per module output.
        atol: Largest allowed absolute difference between torch and ORT outputs.

    Raises:
        RuntimeError: ORT's outputs differ from torch's by more than ``atol``.
    """
    module = module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic = {name: {0: BATCH} for name in input_names}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # exporter deprecation notes, not about our model
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(
            module,
            tuple(example),
            str(path),
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_shapes=dynamic,
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    with torch.no_grad():
        expected = module(*example)
    expected = expected if isinstance(expected, tuple) else (expected,)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(list(output_names), {n: v.numpy() for n, v in zip(input_names, example, strict=True)})
    for name, e, g in zip(output_names, expected, got, strict=True):
        err = float(np.abs(e.numpy() - g).max())
        if err > atol:
            raise RuntimeError(f"{path}: output {name!r} differs from torch by {err:.2e} > {atol:.0e}")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def write_toml(path: Path, top: dict[str, Any], sections: dict[str, dict[str, Any]]) -> None:
    """Write a flat TOML file: top-level keys, then one ``[section]`` per entry of ``sections``.

    Args:
        path: File to write.
        top: Top-level scalar keys.
        sections: Section name -> its scalar/list keys, in order.
    """
    lines = [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    for name, table in sections.items():
        lines += ["", f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def model_toml(
    path: Path,
    name: str,
    description: str,
    schedule: dict[str, Any],
    defaults: dict[str, Any],
    files: dict[str, str],
    training: dict[str, Any],
    latent: dict[str, Any] | None = None,
) -> None:
    """Write a ``model.toml`` for an 8x8 digits model.

    Args:
        path: File to write.
        name: Model name (equal to its folder name).
        description: One line for humans.
        schedule: The ``[schedule]`` table.
        defaults: The ``[defaults]`` table.
        files: Role -> ONNX file name.
        training: Provenance and hyper-parameters (``arch`` plus the architecture's ``HPARAMS``).
        latent: The ``[latent]`` table, for latent models only.
    """
    sections: dict[str, dict[str, Any]] = {
        "image": {"channels": 1, "height": 8, "width": 8, "value_min": -1.0, "value_max": 1.0},
        "classes": {"count": 10, "names": [str(i) for i in range(10)], "null_label": 10},
        "schedule": schedule,
        "defaults": defaults,
        "files": files,
    }
    if latent is not None:
        sections["latent"] = latent
    sections["training"] = training
    kind = "latent" if latent is not None else "pixel"
    write_toml(path, {"name": name, "kind": kind, "description": description}, sections)
