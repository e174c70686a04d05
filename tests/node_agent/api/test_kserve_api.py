"""The KServe v2 API of a real agent: over our own stubs in-process, and with the official Triton
client in a child process (tritonclient and our protos cannot share one process)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import grpc
import numpy as np
import pytest

from protos import kserve_v2_pb2 as pb
from protos import kserve_v2_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def kserve(channel) -> pb_grpc.GRPCInferenceServiceStub:
    return pb_grpc.GRPCInferenceServiceStub(channel)


def infer_request(labels, model="tiny", datatype="INT32", **params) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, id="r1")
    request.inputs.add(name="LABEL", datatype=datatype, shape=[len(labels)])
    dtype = "<i4" if datatype == "INT32" else "<i8"
    request.raw_input_contents.append(np.asarray(labels, dtype=dtype).tobytes())
    for key, value in params.items():
        if isinstance(value, str):
            request.parameters[key].string_param = value
        elif isinstance(value, float):
            request.parameters[key].double_param = value
        else:
            request.parameters[key].int64_param = value
    return request


def status(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_server_and_model_metadata(kserve) -> None:
    assert kserve.ServerLive(pb.ServerLiveRequest(), timeout=5).live
    assert kserve.ServerReady(pb.ServerReadyRequest(), timeout=5).ready
    meta = kserve.ServerMetadata(pb.ServerMetadataRequest(), timeout=5)
    assert meta.name == "test-agent" and "model_repository" in meta.extensions
    model = kserve.ModelMetadata(pb.ModelMetadataRequest(name="tiny"), timeout=5)
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [("LABEL", "INT32", [-1])]
    assert [(t.name, t.datatype, list(t.shape)) for t in model.outputs] == [("IMAGE", "FP32", [-1, 1, 4, 4])]
    assert kserve.ModelReady(pb.ModelReadyRequest(name="tiny"), timeout=5).ready
    assert not kserve.ModelReady(pb.ModelReadyRequest(name="broken"), timeout=5).ready
    assert (
        status(lambda: kserve.ModelReady(pb.ModelReadyRequest(name="nope"), timeout=5))[0] == grpc.StatusCode.NOT_FOUND
    )


def test_repository_index_load_unload(kserve) -> None:
    index = {m.name: m.state for m in kserve.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=5).models}
    assert index["tiny"] == "READY" and index["broken"] == "UNAVAILABLE"
    ready = {m.name for m in kserve.RepositoryIndex(pb.RepositoryIndexRequest(ready=True), timeout=5).models}
    assert "broken" not in ready and "tiny" in ready
    kserve.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="tiny-latent"), timeout=10)
    assert not kserve.ModelReady(pb.ModelReadyRequest(name="tiny-latent"), timeout=5).ready
    kserve.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="tiny-latent"), timeout=30)
    assert kserve.ModelReady(pb.ModelReadyRequest(name="tiny-latent"), timeout=5).ready
    code, details = status(
        lambda: kserve.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="broken"), timeout=30)
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "broken" in details


def test_model_infer_returns_images_and_measurements(kserve) -> None:
    response = kserve.ModelInfer(infer_request([3, 4], steps=9, seed=11, guidance=2.0, scheduler="ddpm"), timeout=30)
    assert response.model_name == "tiny" and response.id == "r1"
    out = response.outputs[0]
    assert (out.name, out.datatype, list(out.shape)) == ("IMAGE", "FP32", [2, 1, 4, 4])
    images = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(2, 1, 4, 4)
    assert np.all(np.abs(images) <= 1.0)
    p = response.parameters
    assert p["steps"].int64_param == 9 and p["scheduler"].string_param == "ddpm"
    assert len(json.loads(p["step_times_s"].string_param)) == 9
    assert p["compute_time_s"].double_param > 0 and p["energy_source"].string_param == "modeled"
    assert p["energy_j"].double_param > 0
    # Typed contents and INT64 labels give the same images as raw INT32 bytes.
    typed = pb.ModelInferRequest(model_name="tiny")
    typed.inputs.add(name="LABEL", datatype="INT64", shape=[2, 1]).contents.int64_contents.extend([3, 4])
    for key, value in (("steps", 9), ("seed", 11)):
        typed.parameters[key].int64_param = value
    typed.parameters["guidance"].double_param = 2.0
    typed.parameters["scheduler"].string_param = "ddpm"
    assert kserve.ModelInfer(typed, timeout=30).raw_output_contents[0] == response.raw_output_contents[0]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.parameters["stepz"].__setattr__("int64_param", 3), "parameters.stepz"),
        (lambda r: r.parameters["steps"].__setattr__("string_param", "many"), "parameters.steps"),
        (lambda r: r.parameters["steps"].__setattr__("int64_param", 0), "steps"),
        (lambda r: r.inputs[0].__setattr__("datatype", "FP32"), "inputs[0].datatype"),
        (lambda r: r.inputs[0].__setattr__("name", "PROMPT"), "inputs[0].name"),
        (lambda r: r.raw_input_contents.__setitem__(0, b"\x00" * 3), "raw_input_contents[0]"),
        (lambda r: r.outputs.add(name="LATENT"), "outputs[0].name"),
        (lambda r: r.__setattr__("model_version", "7"), "model_version"),
        (lambda r: r.parameters["guidance"].__setattr__("double_param", float("nan")), "guidance"),
    ],
)
def test_model_infer_bad_input_names_the_field(kserve, mutate, field) -> None:
    request = infer_request([1])
    mutate(request)
    code, details = status(lambda: kserve.ModelInfer(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in details


def test_timeout_parameter_is_a_server_side_deadline(kserve) -> None:
    """The client waits 30 s; the agent itself stops the denoising loop (50 slow steps) after 2 ms."""
    code, details = status(
        lambda: kserve.ModelInfer(infer_request([0], model="slow", steps=50, timeout=2_000), timeout=30)
    )
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "deadline" in details


TRITON_CLIENT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tritonclient.grpc as tc
    from tritonclient.utils import InferenceServerException

    client = tc.InferenceServerClient(sys.argv[1])
    out = {"live": client.is_server_live(), "ready": client.is_server_ready()}
    out["index"] = sorted(m["name"] for m in client.get_model_repository_index(as_json=True)["models"])
    client.unload_model("tiny")
    out["ready_after_unload"] = client.is_model_ready("tiny")
    client.load_model("tiny")
    out["ready_after_load"] = client.is_model_ready("tiny")
    meta = client.get_model_metadata("tiny", as_json=True)
    out["output_shape"] = meta["outputs"][0]["shape"]
    label = tc.InferInput("LABEL", [3], "INT32")
    label.set_data_from_numpy(np.array([7, 8, 9], dtype=np.int32))
    runs = []
    for steps in (1, 5, 5):
        result = client.infer("tiny", [label], parameters={"steps": steps, "seed": 3, "guidance": 1.5})
        params = result.get_response().parameters
        runs.append({
            "image": result.as_numpy("IMAGE").tolist(),
            "steps": params["steps"].int64_param,
            "n_step_times": len(json.loads(params["step_times_s"].string_param)),
            "energy_source": params["energy_source"].string_param,
        })
    out["runs"] = runs
    try:
        client.infer("tiny", [label], parameters={"steps": 0})
    except InferenceServerException as exc:
        out["bad_steps"] = [exc.status(), exc.message()]
    client.unload_model("tiny")
    out["ready_final"] = client.is_model_ready("tiny")
    client.load_model("tiny")
    print(json.dumps(out))
    """
)


def test_triton_client_drives_the_agent(agent_server) -> None:
    if importlib.util.find_spec("tritonclient") is None:
        pytest.skip("tritonclient is not installed")
    proc = subprocess.run(
        [sys.executable, "-c", TRITON_CLIENT, agent_server.address],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["live"] and out["ready"]
    assert {"tiny", "tiny-latent", "broken", "slow", "badspec"} <= set(out["index"])
    assert out["ready_after_unload"] is False and out["ready_after_load"] is True
    assert [int(d) for d in out["output_shape"]] == [-1, 1, 4, 4]
    one, five, five_again = out["runs"]
    assert (one["steps"], one["n_step_times"], five["steps"], five["n_step_times"]) == (1, 1, 5, 5)
    assert np.asarray(one["image"]).shape == (3, 1, 4, 4)
    assert five["image"] == five_again["image"] and five["image"] != one["image"]
    assert five["energy_source"] == "modeled"
    assert out["bad_steps"][0] == "StatusCode.INVALID_ARGUMENT" and "steps" in out["bad_steps"][1]
    assert out["ready_final"] is False
