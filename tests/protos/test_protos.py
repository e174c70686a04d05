"""The committed generated code matches the protos, and the KServe API is wire-compatible."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_gen_protos():
    spec = importlib.util.spec_from_file_location("gen_protos", REPO / "scripts" / "gen_protos.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_protos"] = module
    spec.loader.exec_module(module)
    return module


def test_generated_code_has_no_drift(tmp_path: Path) -> None:
    gen = _load_gen_protos()
    gen.generate(tmp_path)
    fresh = sorted(p.relative_to(tmp_path) for p in (tmp_path / "protos").glob("*_pb2*.py*"))
    committed = sorted(p.relative_to(REPO) for p in (REPO / "protos").glob("*_pb2*.py*"))
    assert fresh == committed, "generated file set differs: run `make protos` and commit"
    assert len(fresh) >= 6
    for rel in fresh:
        assert (tmp_path / rel).read_bytes() == (REPO / rel).read_bytes(), f"{rel} is stale: run `make protos`"


_SHAPE_SCRIPT = """
import json, sys
def shape(m):
    out = {}
    for f in m.fields:
        kind = f.message_type.full_name if f.message_type is not None else f.type
        repeated = f.label == 3
        out[f.name] = [f.number, kind, repeated, f.containing_oneof.name if f.containing_oneof else None]
    for n in m.nested_types:
        out["<" + n.name + ">"] = shape(n)
    return out
if sys.argv[1] == "triton":
    from tritonclient.grpc import service_pb2 as mod
else:
    from protos import kserve_v2_pb2 as mod
d = mod.DESCRIPTOR
svc = d.services_by_name["GRPCInferenceService"]
print(json.dumps({
    "package": d.package,
    "service": svc.full_name,
    "methods": {m.name: [m.input_type.full_name, m.output_type.full_name, m.server_streaming] for m in svc.methods},
    "messages": {name: shape(m) for name, m in d.message_types_by_name.items()},
}))
"""


def _describe(which: str) -> dict:
    """Descriptor shapes from a child process: tritonclient's copy of the ``inference`` package and
    ours cannot share one process (both register the same symbols in protobuf's default pool)."""
    out = subprocess.run(
        [sys.executable, "-c", _SHAPE_SCRIPT, which], capture_output=True, text=True, cwd=REPO, check=True
    )
    return json.loads(out.stdout)


def test_kserve_v2_is_wire_compatible_with_the_triton_client() -> None:
    """Every message and RPC we declare matches the official client's own definitions."""
    pytest.importorskip("tritonclient")
    ours, theirs = _describe("ours"), _describe("triton")
    assert ours["package"] == theirs["package"] == "inference"
    assert ours["service"] == theirs["service"] == "inference.GRPCInferenceService"
    assert len(ours["methods"]) == 9
    for name, signature in ours["methods"].items():
        assert signature == theirs["methods"][name], name
    assert len(ours["messages"]) >= 20
    for name, shape in ours["messages"].items():
        assert shape == theirs["messages"][name], name
