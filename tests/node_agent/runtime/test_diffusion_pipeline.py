"""DiffusionPipeline: determinism, classifier-free guidance by hand, the latent path, stopping, timing."""

from __future__ import annotations

import time

import numpy as np
import pytest

from node_agent.runtime import denoise_steps
from node_agent.runtime.errors import Cancelled, InferenceError
from node_agent.runtime.pipeline import DiffusionPipeline
from node_agent.runtime.repository import ModelRepository
from node_agent.runtime.schedulers import make_scheduler
from node_agent.runtime.session import create_session

CPU = ["CPUExecutionProvider"]


class SpySession:
    """Wraps an InferenceSession and records every feed."""

    def __init__(self, session):
        self.session = session
        self.feeds: list[dict[str, np.ndarray]] = []

    def run(self, outputs, feeds):
        self.feeds.append({k: np.array(v, copy=True) for k, v in feeds.items()})
        return self.session.run(outputs, feeds)


def make_pipeline(root, write_model, kind="pixel", name="m", denoiser=None):
    write_model(root, name, kind=kind, denoiser=denoiser)
    spec = ModelRepository(root).get(name)
    roles = ["denoiser", "decoder"] if kind == "latent" else ["denoiser"]
    sessions = {role: SpySession(create_session(spec, role, CPU, 1)) for role in roles}
    return DiffusionPipeline(spec, sessions), sessions


def expected_by_hand(spec, labels, steps, seed, guidance, scheduler, eta, eps_fn):
    """The sampling loop written out with numpy and the hand-computed denoiser."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((len(labels), *spec.denoise_shape), dtype=np.float32)
    sched = make_scheduler(scheduler, spec.schedule, eta=eta)
    sched.set_timesteps(steps)
    null = np.full(len(labels), spec.null_label, np.int64)
    for t in sched.timesteps:
        tt = np.full(len(labels), t, np.int64)
        cond, uncond = eps_fn(x, tt, labels), eps_fn(x, tt, null)
        x = sched.step(uncond + np.float32(guidance) * (cond - uncond), int(t), x, rng)
    return x


@pytest.mark.parametrize(("scheduler", "eta"), [("ddim", 0.0), ("ddim", 0.5), ("ddpm", 0.0)])
def test_guided_combination_matches_hand_computation(tmp_path, write_model, onnx_kit, scheduler, eta):
    pipe, sessions = make_pipeline(tmp_path, write_model)
    labels = np.array([3, 7, 0], np.int64)
    out = pipe.generate(labels, steps=6, seed=42, guidance=2.5, scheduler=scheduler, eta=eta)
    x = expected_by_hand(pipe.spec, labels, 6, 42, 2.5, scheduler, eta, onnx_kit.affine_eps)
    np.testing.assert_allclose(out.images, np.clip(x, -1.0, 1.0), rtol=1e-6, atol=1e-6)
    feeds = sessions["denoiser"].feeds
    assert len(feeds) == 6
    for feed in feeds:  # one 2B batch per step: conditional half, then the null label
        assert feed["x"].shape == (6, 1, 8, 8)
        np.testing.assert_array_equal(feed["y"], [3, 7, 0, 10, 10, 10])
        np.testing.assert_array_equal(feed["x"][:3], feed["x"][3:])
        assert len(set(feed["t"].tolist())) == 1
    assert out.images.dtype == np.float32 and out.images.shape == (3, 1, 8, 8)
    assert out.images.min() >= -1.0 and out.images.max() <= 1.0


def test_guidance_one_runs_conditional_batch_only(tmp_path, write_model, onnx_kit):
    pipe, sessions = make_pipeline(tmp_path, write_model)
    labels = np.array([1, 2], np.int64)
    out = pipe.generate(labels, steps=3, seed=0, guidance=1.0, scheduler="ddim")
    assert [f["y"].tolist() for f in sessions["denoiser"].feeds] == [[1, 2]] * 3
    x = expected_by_hand(pipe.spec, labels, 3, 0, 1.0, "ddim", 0.0, onnx_kit.affine_eps)
    np.testing.assert_allclose(out.images, np.clip(x, -1, 1), rtol=1e-6, atol=1e-6)


def test_guidance_zero_runs_unconditional_batch_only(tmp_path, write_model):
    pipe, sessions = make_pipeline(tmp_path, write_model)
    pipe.generate(np.array([1, 2], np.int64), steps=2, seed=0, guidance=0.0, scheduler="ddim")
    assert [f["y"].tolist() for f in sessions["denoiser"].feeds] == [[10, 10]] * 2


def test_deterministic_and_seed_dependent(tmp_path, write_model):
    pipe, _ = make_pipeline(tmp_path, write_model)
    labels = np.array([4, 5], np.int64)
    a = pipe.generate(labels, 8, 7, 2.0, "ddpm")
    b = pipe.generate(labels, 8, 7, 2.0, "ddpm")
    c = pipe.generate(labels, 8, 8, 2.0, "ddpm")
    assert np.array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    assert len(a.step_times_s) == 8 and all(s > 0 for s in a.step_times_s)
    assert a.denoise_time_s >= sum(a.step_times_s) * 0.99
    assert 0 <= a.scheduler_overhead_s <= a.denoise_time_s
    assert a.decode_time_s >= 0


def test_latent_path_runs_the_decoder(tmp_path, write_model, onnx_kit):
    pipe, sessions = make_pipeline(tmp_path, write_model, kind="latent")
    labels = np.array([2, 9], np.int64)
    den = pipe.denoise_latent(labels, steps=4, seed=3, guidance=2.0, scheduler="ddim")
    assert den.samples.shape == (2, 4, 2, 2)
    x = expected_by_hand(pipe.spec, labels, 4, 3, 2.0, "ddim", 0.0, onnx_kit.affine_eps)
    np.testing.assert_allclose(den.samples, x, rtol=1e-6, atol=1e-6)
    assert sessions["decoder"].feeds == []  # denoising alone never decodes
    images, decode_time_s = pipe.decode(den.samples)
    weight = onnx_kit.decoder_weight((4, 2, 2), (1, 8, 8))
    by_hand = ((den.samples / np.float32(0.5)).reshape(2, 16) @ weight).reshape(2, 1, 8, 8)
    np.testing.assert_allclose(images, np.clip(by_hand, -1, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sessions["decoder"].feeds[0]["z"], den.samples / np.float32(0.5))
    assert decode_time_s > 0
    full = pipe.generate(labels, steps=4, seed=3, guidance=2.0, scheduler="ddim")
    np.testing.assert_array_equal(full.images, images)


def test_should_stop_between_steps(tmp_path, write_model):
    pipe, sessions = make_pipeline(tmp_path, write_model)
    calls = []

    def should_stop():
        calls.append(1)
        return "deadline exceeded" if len(calls) == 3 else None

    with pytest.raises(Cancelled) as info:
        pipe.generate(np.array([1], np.int64), 10, 0, 2.0, "ddim", should_stop=should_stop)
    assert info.value.reason == "deadline exceeded"
    assert len(sessions["denoiser"].feeds) == 2  # checked before steps 1, 2, 3; stopped before 3


def test_ort_failure_becomes_inference_error(tmp_path, write_model, onnx_kit):
    pipe, _ = make_pipeline(tmp_path, write_model, denoiser=lambda p, s: onnx_kit.gather_denoiser(p, s, 10))
    pipe.generate(np.array([1], np.int64), 1, 0, 2.0, "ddim")  # t = 0 is inside the table
    with pytest.raises(InferenceError, match="onnxruntime failed"):
        pipe.generate(np.array([1], np.int64), 2, 0, 2.0, "ddim")  # t = 500 is not


@pytest.mark.parametrize(
    ("labels", "steps", "guidance", "scheduler"),
    [
        (np.array([], np.int64), 2, 2.0, "ddim"),
        (np.array([10], np.int64), 2, 2.0, "ddim"),
        (np.array([[1]], np.int64), 2, 2.0, "ddim"),
        (np.array([1.0]), 2, 2.0, "ddim"),
        (np.array([1], np.int64), 0, 2.0, "ddim"),
        (np.array([1], np.int64), 2, float("nan"), "ddim"),
        (np.array([1], np.int64), 2, 2.0, "plms"),
    ],
)
def test_bad_arguments(tmp_path, write_model, labels, steps, guidance, scheduler):
    pipe, _ = make_pipeline(tmp_path, write_model)
    with pytest.raises(ValueError):
        pipe.generate(labels, steps, 0, guidance, scheduler)


@pytest.mark.parametrize("steps", [1, 5, 50, 250])
@pytest.mark.parametrize("guidance", [0.0, 1.0, 2.0, 7.5])
def test_ddim_fast_path_matches_the_scheduler_loop(tmp_path, write_model, onnx_kit, steps, guidance):
    """DDIM eta = 0 runs the folded float32 steps; the float64 scheduler loop by hand agrees."""
    pipe, sessions = make_pipeline(tmp_path, write_model)
    labels = np.array([3, 7, 0, 9], np.int64)
    den = pipe.denoise_latent(labels, steps=steps, seed=5, guidance=guidance, scheduler="ddim")
    x = expected_by_hand(pipe.spec, labels, steps, 5, guidance, "ddim", 0.0, onnx_kit.affine_eps)
    np.testing.assert_allclose(den.samples, x, rtol=1e-5, atol=1e-5)
    assert len(sessions["denoiser"].feeds) == steps and len(den.step_times_s) == steps
    again = pipe.denoise_latent(labels, steps=steps, seed=5, guidance=guidance, scheduler="ddim")
    np.testing.assert_array_equal(again.samples, den.samples)  # reused buffers, same result


class SlowSession(SpySession):
    """Spends ``run_s`` inside ``run`` and records how long each call took, measured inside it."""

    def __init__(self, session, run_s):
        super().__init__(session)
        self.run_s = run_s
        self.durations_s: list[float] = []

    def run(self, outputs, feeds):
        start_s = time.perf_counter()
        time.sleep(self.run_s)
        result = super().run(outputs, feeds)
        self.durations_s.append(time.perf_counter() - start_s)
        return result


@pytest.mark.parametrize(("scheduler", "eta"), [("ddim", 0.0), ("ddim", 0.5), ("ddpm", 0.0)])
def test_overhead_is_everything_outside_session_run(tmp_path, write_model, monkeypatch, scheduler, eta):
    """Make the steps (guidance, scheduler update, next inputs) slow: it must show as overhead only."""
    write_model(tmp_path, "m")
    spec = ModelRepository(tmp_path).get("m")
    session = SlowSession(create_session(spec, "denoiser", CPU, 1), run_s=0.002)
    pipe = DiffusionPipeline(spec, {"denoiser": session})
    step_s, steps = 0.005, 4

    def slow(fn):
        def wrapped(*args):
            time.sleep(step_s)
            return fn(*args)

        return wrapped

    start = denoise_steps.StepPlanner.start

    def slow_start(self, *args):
        sampling = start(self, *args)
        if sampling.ops is not None:  # the loop inlines these
            sampling.ops = [(rows, slow(dot), *rest) for rows, dot, *rest in sampling.ops]
        else:
            sampling.step = slow(sampling.step)
        return sampling

    monkeypatch.setattr(denoise_steps.StepPlanner, "start", slow_start)
    out = pipe.denoise_latent(np.array([1, 2], np.int64), steps, 0, 2.0, scheduler, eta)
    model_s = out.denoise_time_s - out.scheduler_overhead_s
    assert out.scheduler_overhead_s >= steps * step_s
    assert sum(session.durations_s) <= model_s < sum(session.durations_s) + steps * step_s / 2
    assert sum(out.step_times_s) <= out.denoise_time_s
    assert all(s >= step_s + 0.002 for s in out.step_times_s)


def test_should_stop_time_is_overhead(tmp_path, write_model):
    write_model(tmp_path, "m")
    spec = ModelRepository(tmp_path).get("m")
    session = SlowSession(create_session(spec, "denoiser", CPU, 1), run_s=0.0)
    pipe = DiffusionPipeline(spec, {"denoiser": session})

    def should_stop():
        time.sleep(0.003)

    out = pipe.denoise_latent(np.array([1, 2], np.int64), 4, 0, 2.0, "ddim", should_stop=should_stop)
    assert out.scheduler_overhead_s >= 4 * 0.003
    assert out.denoise_time_s - out.scheduler_overhead_s < sum(session.durations_s) + 4 * 0.0015
