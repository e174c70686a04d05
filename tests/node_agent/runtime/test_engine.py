"""Engine: load/unload reports, validation, failures isolated to one request or one model."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from node_agent.runtime._busy import BusyMeter
from node_agent.runtime.engine import (
    Engine,
    GenerateParams,
    InferenceError,
    InvalidArgument,
    ModelLoadError,
    ModelNotFound,
    ModelNotLoaded,
)
from node_agent.runtime.repository import ModelRepository

TIMEOUT_S = 10.0
PARAMS = GenerateParams(labels=(1, 2), steps=4, seed=0, guidance=2.0, scheduler="ddim")


@pytest.fixture
def engine_for(tmp_path):
    engines = []

    def make(**kwargs) -> Engine:
        kwargs.setdefault("intra_op_threads", 1)
        engine = Engine(ModelRepository(tmp_path), **kwargs)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def test_load_reports_and_is_idempotent(tmp_path, write_model, engine_for):
    write_model(tmp_path, "px")
    write_model(tmp_path, "ldm", kind="latent")
    engine = engine_for()
    report = engine.load("px")
    assert report.name == "px" and report.load_time_s > 0
    assert isinstance(report.mem_delta_bytes, int)
    assert report.providers == ["CPUExecutionProvider"]
    assert engine.load("px") is report
    engine.load("ldm")
    info = engine.loaded()
    assert sorted(info) == ["ldm", "px"]
    assert info["px"].queue_depth == 0 and info["px"].queue_capacity == 8 and not info["px"].busy
    assert info["ldm"].spec.kind == "latent"


def test_generate_result_fields(tmp_path, write_model, engine_for):
    write_model(tmp_path, "ldm", kind="latent")
    engine = engine_for()
    engine.load("ldm")
    result = engine.submit("ldm", PARAMS).result(TIMEOUT_S)
    assert result.images.shape == (2, 1, 8, 8) and result.images.dtype == np.float32
    assert len(result.step_times_s) == 4 and result.decode_time_s > 0
    assert result.queue_time_s >= 0 and result.compute_time_s > 0
    assert result.started_monotonic_s < result.finished_monotonic_s
    assert result.compute_time_s == pytest.approx(result.finished_monotonic_s - result.started_monotonic_s)
    assert (result.steps, result.scheduler, result.guidance, result.seed) == (4, "ddim", 2.0, 0)
    again = engine.submit("ldm", PARAMS).result(TIMEOUT_S)
    assert np.array_equal(result.images, again.images)
    assert engine.loaded()["ldm"].requests_served == 2
    assert 0.0 < engine.busy_fraction() <= 1.0


def test_unload(tmp_path, write_model, engine_for):
    write_model(tmp_path, "px")
    engine = engine_for()
    engine.load("px")
    freed_bytes = engine.unload("px")
    assert isinstance(freed_bytes, int) and freed_bytes >= 0
    assert engine.loaded() == {}
    with pytest.raises(ModelNotLoaded):
        engine.unload("px")
    with pytest.raises(ModelNotLoaded):
        engine.submit("px", PARAMS)
    assert engine.load("px").load_time_s > 0  # loads again


def test_load_errors(tmp_path, write_model, engine_for):
    good = write_model(tmp_path, "good")
    bad = write_model(tmp_path, "bad")
    broken_spec = write_model(tmp_path, "broken-spec")
    (bad / "denoiser.onnx").write_bytes(b"garbage" * 100)
    (broken_spec / "model.toml").write_text((good / "model.toml").read_text())  # name = "good"
    engine = engine_for()
    engine.load("good")
    with pytest.raises(ModelLoadError, match=r"bad/denoiser.onnx: cannot load denoiser"):
        engine.load("bad")
    with pytest.raises(ModelLoadError, match=r"model.toml: name:"):
        engine.load("broken-spec")
    with pytest.raises(ModelNotFound):
        engine.load("absent")
    with pytest.raises(ModelNotFound):
        engine.load("../good")
    assert list(engine.loaded()) == ["good"]  # the others left no trace
    assert engine.submit("good", PARAMS).result(TIMEOUT_S).images.shape == (2, 1, 8, 8)


def test_ort_failure_fails_that_request_only(tmp_path, write_model, onnx_kit, engine_for):
    write_model(tmp_path, "g", denoiser=lambda p, s: onnx_kit.gather_denoiser(p, s, 10))
    engine = engine_for()
    engine.load("g")  # the warm-up runs t = 0, inside the table
    failing = engine.submit("g", dataclasses.replace(PARAMS, steps=2))  # t = 500: out of the table
    with pytest.raises(InferenceError, match="onnxruntime failed"):
        failing.result(TIMEOUT_S)
    assert engine.submit("g", dataclasses.replace(PARAMS, steps=1)).result(TIMEOUT_S).steps == 1
    info = engine.loaded()["g"]
    assert (info.requests_served, info.requests_failed) == (1, 1)


BAD_PARAMS = [
    ("steps", {"steps": 0}),
    ("steps", {"steps": 1001}),
    ("steps", {"steps": 2.5}),
    ("steps", {"steps": True}),
    ("labels", {"labels": (1, 10)}),
    ("labels", {"labels": (-1,)}),
    ("labels", {"labels": (1.0,)}),
    ("batch", {"labels": ()}),
    ("batch", {"labels": (0,) * 9}),
    ("guidance", {"guidance": float("nan")}),
    ("guidance", {"guidance": float("inf")}),
    ("guidance", {"guidance": -0.5}),
    ("scheduler", {"scheduler": "euler"}),
    ("eta", {"eta": 1.5}),
    ("eta", {"eta": float("nan")}),
    ("seed", {"seed": -1}),
    ("seed", {"seed": 2**64}),
]


@pytest.fixture(scope="module")
def validating_engine(tmp_path_factory, write_model):
    root = tmp_path_factory.mktemp("repo")
    write_model(root, "px")
    write_model(root, "unloaded")
    engine = Engine(ModelRepository(root), intra_op_threads=1, warmup=False)
    engine.load("px")
    yield engine
    engine.close()


@pytest.mark.parametrize(("field", "change"), BAD_PARAMS, ids=[f"{f}-{c}" for f, c in BAD_PARAMS])
def test_validation_names_the_field(validating_engine, field, change):
    params = dataclasses.replace(PARAMS, **change)
    with pytest.raises(InvalidArgument) as info:
        validating_engine.validate("unloaded", params)  # checked against the repository's spec
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    with pytest.raises(InvalidArgument) as info:
        validating_engine.submit("px", params)
    assert info.value.field == field
    assert validating_engine.loaded()["px"].queue_depth == 0


def test_engine_batch_cap(tmp_path, write_model, engine_for):
    write_model(tmp_path, "px")
    engine = engine_for(max_batch_cap=2, warmup=False)
    assert engine.validate("px", PARAMS).name == "px"
    with pytest.raises(InvalidArgument, match="at most 2") as info:
        engine.validate("px", dataclasses.replace(PARAMS, labels=(1, 2, 3)))
    assert info.value.field == "batch"


def test_with_defaults(tmp_path, write_model):
    write_model(tmp_path, "px")
    spec = ModelRepository(tmp_path).get("px")
    params = GenerateParams.with_defaults(spec, (1,), 5, steps=3)
    assert params == GenerateParams((1,), 3, 5, 2.0, "ddim", 0.0)


def test_two_models_serve_in_parallel_threads(tmp_path, write_model, engine_for):
    write_model(tmp_path, "a")
    write_model(tmp_path, "b", kind="latent")
    engine = engine_for()
    engine.load("a")
    engine.load("b")
    futures = [engine.submit(name, PARAMS) for name in ("a", "b", "a", "b")]
    assert [f.result(TIMEOUT_S).model for f in futures] == ["a", "b", "a", "b"]


def test_instrument_wraps_the_compute_window(tmp_path, write_model, engine_for):
    write_model(tmp_path, "px")
    engine = engine_for()
    engine.load("px")
    events = []

    class Recorder:
        def begin(self):
            events.append(("begin", threading.current_thread().name))
            return "handle"

        def end(self, handle):
            events.append(("end", handle))
            return {"energy_j": None}

    result = engine.submit("px", PARAMS, instrument=Recorder()).result(TIMEOUT_S)
    assert result.instrument_result == {"energy_j": None}
    assert events == [("begin", "engine-px"), ("end", "handle")]
    assert engine.submit("px", PARAMS).result(TIMEOUT_S).instrument_result is None


def test_busy_meter_union_of_intervals():
    now = [100.0]
    meter = BusyMeter(window_s=10.0, clock=lambda: now[0])
    now[0] = 110.0
    a = meter.start()  # 110..114
    now[0] = 112.0
    b = meter.start()  # 112..116, overlaps a
    now[0] = 114.0
    meter.end(a)
    now[0] = 116.0
    meter.end(b)
    now[0] = 120.0
    assert meter.fraction() == pytest.approx(6.0 / 10.0)
    c = meter.start()  # running, 120..125
    now[0] = 125.0
    assert meter.fraction() == pytest.approx((1.0 + 5.0) / 10.0)  # 115..116 and 120..125
    meter.end(c)
    now[0] = 200.0
    assert meter.fraction() == 0.0
