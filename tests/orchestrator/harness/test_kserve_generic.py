"""``edgetb bench --protocol kserve`` against a minimal KServe v2 server that answers only the
standard fields (no edgetb measurement parameters, no repository extension)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from protos import kserve_v2_pb2 as pb
from protos import kserve_v2_pb2_grpc as pb_grpc

#: name -> (ready, input name, images returned per label shortfall)
MODELS = {
    "gen": (True, "LABEL", 0),
    "short": (True, "LABEL", 1),
    "classifier": (True, "INPUT0", 0),
    "cold": (False, "LABEL", 0),
}


class MinimalKServe(pb_grpc.GRPCInferenceServiceServicer):
    """Standard KServe v2 only; remembers what each ModelInfer asked for."""

    def __init__(self) -> None:
        self.requests: list[tuple[list[int], int, int]] = []

    def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name="minimal", version="9.9")

    def ModelReady(self, request, context):
        if request.name not in MODELS:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model '{request.name}'")
        return pb.ModelReadyResponse(ready=MODELS[request.name][0])

    def ModelMetadata(self, request, context):
        response = pb.ModelMetadataResponse(name=request.name, versions=["1"], platform="test")
        response.inputs.add(name=MODELS[request.name][1], datatype="INT32", shape=[-1])
        response.outputs.add(name="IMAGE", datatype="FP32", shape=[-1, 1, 2, 2])
        return response

    def ModelInfer(self, request, context):
        labels = np.frombuffer(request.raw_input_contents[0], dtype="<i4").tolist()
        params = request.parameters
        self.requests.append((labels, params["steps"].int64_param, params["seed"].int64_param))
        n = len(labels) - MODELS[request.model_name][2]
        response = pb.ModelInferResponse(model_name=request.model_name, id=request.id)
        response.outputs.add(name="IMAGE", datatype="FP32", shape=[n, 1, 2, 2])
        response.raw_output_contents.append(np.zeros((n, 1, 2, 2), "<f4").tobytes())
        return response


@pytest.fixture(scope="module")
def minimal_server() -> Iterator[tuple[str, MinimalKServe]]:
    servicer = MinimalKServe()
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(grace=None)


def bench(address: str, out: Path, *args: str) -> tuple[int, str, dict | None]:
    argv = ["bench", "--target", address, "--protocol", "kserve", "--out", str(out), "--idle-s", "0", *args]
    result = CliRunner().invoke(app, argv, terminal_width=200)
    return result.exit_code, result.output, json.loads(out.read_text()) if out.exists() else None


def test_standard_fields_only_give_nulls_never_made_up_figures(minimal_server, tmp_path) -> None:
    address, servicer = minimal_server
    servicer.requests.clear()
    code, output, r = bench(
        address, tmp_path / "b.json", "--model", "gen", "--steps", "7", "--batch", "3", "--warmup", "1",
        "--min-duration-s", "0.1", "--min-queries", "10",
    )  # fmt: skip
    assert code == 0, output
    q = r["queries"]
    assert q["completed"] == q["issued"] >= 10 and q["images_completed"] == 3 * q["completed"]
    assert r["energy_j_per_image"] is None and r["energy_source"] == "unavailable"
    assert r["energy_note"] == f"{q['completed']} of {q['completed']} responses carried no energy figure"
    assert r["server_time_s"] == {"queue_p50": None, "compute_p50": None}
    assert r["idle"]["power_w"] is None and r["energy_above_idle_j_per_image"] is None
    assert (r["server"]["server"], r["server"]["server_version"]) == ("minimal", "9.9")
    assert r["settings"]["num_classes"] == 10 and "does not report" in r["settings"]["num_classes_note"]
    # What went over the wire: the steps asked for, batches of 3 labels in 0..9, one warm-up first.
    assert len(servicer.requests) == q["issued"] + 1
    assert all(steps == 7 and len(labels) == 3 and all(0 <= v < 10 for v in labels)
               for labels, steps, _ in servicer.requests)  # fmt: skip
    assert len({seed for _, _, seed in servicer.requests}) == len(servicer.requests)


def test_short_responses_are_bad_responses(minimal_server, tmp_path) -> None:
    address, _ = minimal_server
    run = ("--model", "short", "--steps", "2", "--batch", "2", "--min-duration-s", "0", "--min-queries", "5")
    code, output, r = bench(address, tmp_path / "a.json", *run, "--warmup", "0")
    assert code == 0, output
    assert r["queries"]["failed"] == {"BAD_RESPONSE": r["queries"]["issued"]} and r["queries"]["completed"] == 0
    assert "expected 2 images" in r["errors"][0]
    code, output, r = bench(address, tmp_path / "b.json", *run)
    assert code == 1 and "bad response" in output and r is None


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ("classifier", "input 'LABEL'"),
        ("cold", "not ready and loading it failed: UNIMPLEMENTED"),
        ("nope", "NOT_FOUND: unknown model 'nope'"),
    ],
)
def test_unservable_models_fail_clearly(minimal_server, tmp_path, model: str, words: str) -> None:
    code, output, r = bench(minimal_server[0], tmp_path / "b.json", "--model", model, "--steps", "2")
    assert code == 1 and words in " ".join(output.split()) and r is None
