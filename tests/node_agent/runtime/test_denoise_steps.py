"""The affine fast path of the denoising loop against the general (float64 scheduler) path.

The fast path folds a DDIM step (eta = 0, no clipping) and classifier-free guidance into float32
weights on (x, cond, uncond); the general path runs guidance in float32 and ``DDIMScheduler.step``
in float64. Both are driven here by the same smooth, nonlinear stand-in denoiser.
"""

from __future__ import annotations

import numpy as np
import pytest

from node_agent.runtime.denoise_steps import AffineSteps, SchedulerSteps, StepPlanner
from node_agent.runtime.errors import InferenceError
from node_agent.runtime.repository import ScheduleSpec
from node_agent.runtime.schedulers import DDIMScheduler, DDPMScheduler, make_scheduler

BETAS = {"linear": (0.0001, 0.02), "scaled_linear": (0.00085, 0.012), "squaredcos_cap_v2": (0.0001, 0.02)}
PREDICTIONS = ("epsilon", "v_prediction", "sample")
NULL = 10
SHAPE = (3, 1, 4, 4)


def schedule(beta_schedule="linear", prediction_type="epsilon", clip_sample=False) -> ScheduleSpec:
    start, end = BETAS[beta_schedule]
    return ScheduleSpec(1000, beta_schedule, start, end, prediction_type, clip_sample, 1.0)


def denoiser(x: np.ndarray, t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Depends on every input, nonlinearly in x; the halves of a guided batch differ through y."""
    t4, y4 = t[:, None, None, None], y[:, None, None, None]
    return (np.tanh(0.8 * x) + 0.02 * y4 + 0.1 * np.sin(t4 / 100.0)).astype(np.float32)


def run(steps: AffineSteps | SchedulerSteps) -> np.ndarray:
    feeds = steps.start()
    for i in range(steps.num_steps):
        feeds = steps.step(i, denoiser(**feeds))
    return steps.finish()


def initial(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(SHAPE, dtype=np.float32), rng.integers(0, 10, SHAPE[0]).astype(np.int64)


def general_path(spec, scheduler, eta, steps, x, labels, guidance, seed=1) -> np.ndarray:
    """The loop on the scheduler's own step, whatever the scheduler."""
    sampler = make_scheduler(scheduler, spec, eta=eta)
    sampler.set_timesteps(steps)
    null = np.full(len(labels), NULL, np.int64)
    y = labels if guidance == 1.0 else null if guidance == 0.0 else np.concatenate([labels, null])
    return run(SchedulerSteps(sampler, x, y, guidance, np.random.default_rng(seed)))


@pytest.mark.parametrize("beta_schedule", list(BETAS))
@pytest.mark.parametrize("prediction_type", PREDICTIONS)
@pytest.mark.parametrize("n", [1, 7, 50, 1000])
def test_affine_coefficients_reproduce_the_ddim_step(beta_schedule, prediction_type, n):
    sched = DDIMScheduler(schedule(beta_schedule, prediction_type))
    sched.set_timesteps(n)
    coefficients = sched.affine_coefficients()
    assert coefficients.shape == (n, 2) and coefficients.dtype == np.float64
    rng = np.random.default_rng(n)
    for i in sorted({0, 1, n // 2, n - 2, n - 1} & set(range(n))):
        x = rng.standard_normal(SHAPE).astype(np.float32)
        out = rng.standard_normal(SHAPE).astype(np.float32)
        a, b = coefficients[i]
        expected = sched.step(out, int(sched.timesteps[i]), x)
        np.testing.assert_allclose(a * x.astype(np.float64) + b * out, expected, rtol=2e-6, atol=2e-6)


def test_only_deterministic_unclipped_ddim_is_affine():
    for sched in (
        DDIMScheduler(schedule(), eta=0.3),
        DDIMScheduler(schedule(clip_sample=True)),
        DDPMScheduler(schedule()),
    ):
        sched.set_timesteps(10)
        assert sched.affine_coefficients() is None
    sched = DDIMScheduler(schedule())
    sched.set_timesteps(10)
    assert sched.affine_coefficients() is not None


@pytest.mark.parametrize("n", [1, 2, 7, 50, 200])
@pytest.mark.parametrize("guidance", [0.0, 1.0, 2.0, 7.5, 0.3])
@pytest.mark.parametrize("prediction_type", PREDICTIONS)
def test_fast_path_matches_general_path(n, guidance, prediction_type):
    spec = schedule("linear", prediction_type)
    x, labels = initial(n)
    steps = StepPlanner(spec, NULL).start("ddim", 0.0, n, x, labels, guidance, np.random.default_rng(1))
    assert isinstance(steps, AffineSteps)
    fast = run(steps)
    assert fast.dtype == np.float32 and fast.shape == SHAPE
    np.testing.assert_allclose(fast, general_path(spec, "ddim", 0.0, n, x, labels, guidance), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("scheduler", "eta", "clip_sample"), [("ddpm", 0.0, False), ("ddim", 0.5, False), ("ddim", 0.0, True)]
)
@pytest.mark.parametrize("guidance", [0.0, 1.0, 2.0])
def test_other_samplers_take_the_general_path(scheduler, eta, clip_sample, guidance):
    spec = schedule("linear", "epsilon", clip_sample)
    x, labels = initial()
    steps = StepPlanner(spec, NULL).start(scheduler, eta, 20, x, labels, guidance, np.random.default_rng(1))
    assert isinstance(steps, SchedulerSteps)
    np.testing.assert_array_equal(run(steps), general_path(spec, scheduler, eta, 20, x, labels, guidance))


def test_feeds_hold_x_in_both_halves_and_the_labels():
    x, labels = initial()
    steps = StepPlanner(schedule(), NULL).start("ddim", 0.0, 5, x, labels, 3.0, None)
    feeds = steps.start()
    np.testing.assert_array_equal(feeds["x"], np.concatenate([x, x]))
    np.testing.assert_array_equal(feeds["y"], np.concatenate([labels, np.full(3, NULL)]))
    assert feeds["x"].dtype == np.float32 and feeds["t"].dtype == np.int64 and feeds["y"].dtype == np.int64
    for i, t in enumerate([800, 600, 400, 200, 0]):
        np.testing.assert_array_equal(feeds["t"], np.full(6, t))
        feeds = steps.step(i, denoiser(**feeds))
        if i < 4:
            np.testing.assert_array_equal(feeds["x"][:3], feeds["x"][3:])  # the same x in both halves


def test_buffers_are_reused_without_leaking_between_runs():
    planner = StepPlanner(schedule(), NULL)
    (x1, labels1), (x2, labels2) = initial(1), initial(2)

    def fresh(x, labels):
        return run(StepPlanner(schedule(), NULL).start("ddim", 0.0, 10, x, labels, 2.0, None))

    first = run(planner.start("ddim", 0.0, 10, x1, labels1, 2.0, None))
    first_copy = first.copy()
    abandoned = planner.start("ddim", 0.0, 10, x2, labels2, 2.0, None)  # a run stopped midway
    abandoned.step(0, denoiser(**abandoned.start()))
    second = run(planner.start("ddim", 0.0, 10, x2, labels2, 2.0, None))
    first[...] = 0  # the caller owns its samples
    third = run(planner.start("ddim", 0.0, 10, x1, labels1, 2.0, None))
    np.testing.assert_array_equal(first_copy, fresh(x1, labels1))
    np.testing.assert_array_equal(second, fresh(x2, labels2))
    np.testing.assert_array_equal(third, first_copy)


def test_plans_are_cached_per_run_settings():
    planner = StepPlanner(schedule(), NULL)
    plan = planner.affine_plan("ddim", 0.0, 10, 2.0, SHAPE)
    assert planner.affine_plan("ddim", 0.0, 10, 2.0, SHAPE) is plan
    assert planner.affine_plan("ddim", 0.0, 11, 2.0, SHAPE) is not plan
    assert planner.affine_plan("ddpm", 0.0, 10, 2.0, SHAPE) is None
    with pytest.raises(ValueError, match="num_steps"):
        planner.affine_plan("ddim", 0.0, True, 2.0, SHAPE)  # not the plan of steps=1


@pytest.mark.parametrize("bad", [np.zeros((6, 1, 4, 1), np.float32), np.zeros((1, 1, 4, 4), np.float32), [0.0]])
def test_wrong_output_shape_is_an_inference_error(bad):
    x, labels = initial()
    steps = StepPlanner(schedule(), NULL).start("ddim", 0.0, 5, x, labels, 2.0, None)
    steps.start()
    with pytest.raises(InferenceError, match="expected"):
        steps.step(0, bad)
