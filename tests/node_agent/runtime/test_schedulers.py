"""numpy DDPM/DDIM against diffusers' DDPMScheduler/DDIMScheduler (the reference), plus properties.

How the comparison is made sound:

* Timesteps and betas are compared with diffusers built from the same config.
* Steps are compared teacher-forced: at every step both get the same ``model_output`` and ``sample``
  (from a smooth synthetic model), so errors cannot compound through a chaotic trajectory.
* diffusers keeps ``alphas_cumprod`` in float32, whose rounding (e.g. ``1 - a_t / a_prev`` near
  t = 0) is itself ~1e-4 relative; ours is float64. The main test therefore upcasts the reference:
  its ``alphas_cumprod`` table is replaced by the float64 one (checked against diffusers' own to
  float32 precision in ``test_betas_and_alphas_match_diffusers``) and it is fed float64 tensors, so
  only the step formulas are compared, to 1e-5. A second test uses diffusers untouched (float32).
* DDPM's noise: diffusers draws it with ``torch.randn(shape, generator=g)``; a twin generator with
  the same seed draws the identical tensor, which is passed to ours as ``noise=``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler as RefDDIM
from diffusers import DDPMScheduler as RefDDPM
from hypothesis import given, settings
from hypothesis import strategies as st

from node_agent.runtime.repository import ScheduleSpec
from node_agent.runtime.schedulers import DDIMScheduler, DDPMScheduler, make_betas, make_scheduler

T = 1000
BETA_SCHEDULES = {
    "linear": (0.0001, 0.02),
    "scaled_linear": (0.00085, 0.012),
    "squaredcos_cap_v2": (0.0001, 0.02),
}
PREDICTIONS = ("epsilon", "v_prediction", "sample")
STEP_COUNTS = (1, 7, 50, T)


def schedule(beta_schedule="linear", prediction_type="epsilon", clip_sample=False, n=T) -> ScheduleSpec:
    start, end = BETA_SCHEDULES[beta_schedule]
    return ScheduleSpec(n, beta_schedule, start, end, prediction_type, clip_sample, 1.0)


def reference(name: str, spec: ScheduleSpec):
    cls = RefDDIM if name == "ddim" else RefDDPM
    return cls(
        num_train_timesteps=spec.num_train_timesteps,
        beta_schedule=spec.beta_schedule,
        beta_start=spec.beta_start,
        beta_end=spec.beta_end,
        prediction_type=spec.prediction_type,
        clip_sample=spec.clip_sample,
        clip_sample_range=spec.clip_sample_range,
    )


def model(x: np.ndarray, t: int) -> np.ndarray:
    """A smooth stand-in for a denoiser."""
    return (0.9 * x + 0.1 * math.sin(t / 50.0)).astype(np.float32)


def run_both(name, spec, n, *, upcast: bool, eta: float = 0.0, seed: int = 0):
    """Teacher-forced run; yields (ours, reference) after every step."""
    ours = make_scheduler(name, spec, eta=eta)
    ref = reference(name, spec)
    ours.set_timesteps(n)
    ref.set_timesteps(n)
    dtype = torch.float64 if upcast else torch.float32
    if upcast:
        ref.alphas_cumprod = torch.from_numpy(ours.alphas_cumprod)
        if name == "ddim":
            ref.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    gen_ref, gen_twin = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    for t in ours.timesteps:
        out = model(x, int(t))
        out_ref, x_ref = torch.from_numpy(out).to(dtype), torch.from_numpy(x).to(dtype)
        noise = None
        if name == "ddpm":
            if t > 0:
                noise = torch.randn(x.shape, generator=gen_twin, dtype=dtype).numpy()
            expected = ref.step(out_ref, int(t), x_ref, generator=gen_ref).prev_sample
        else:
            if eta > 0:
                noise = rng.standard_normal(x.shape)
            variance_noise = None if noise is None else torch.from_numpy(noise).to(dtype)
            expected = ref.step(out_ref, int(t), x_ref, eta=eta, variance_noise=variance_noise).prev_sample
        x = ours.step(out, int(t), x, noise=noise)
        assert x.dtype == np.float32
        yield x, expected.numpy()


CASES = [
    (beta_schedule, prediction_type, n)
    for beta_schedule in BETA_SCHEDULES
    for prediction_type in PREDICTIONS
    for n in STEP_COUNTS
    if n < T or beta_schedule != "scaled_linear"  # all T steps: two schedules are enough (time)
]


@pytest.mark.parametrize(("beta_schedule", "prediction_type", "n"), CASES)
@pytest.mark.parametrize("name", ["ddim", "ddpm"])
def test_steps_match_diffusers(name, beta_schedule, prediction_type, n):
    spec = schedule(beta_schedule, prediction_type)
    for ours, expected in run_both(name, spec, n, upcast=True):
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("prediction_type", "n"), [(p, n) for p in PREDICTIONS for n in (1, 7, 50)] + [("epsilon", T)])
@pytest.mark.parametrize("name", ["ddim", "ddpm"])
def test_steps_match_untouched_float32_diffusers(name, prediction_type, n):
    # DDPM over all T steps: diffusers' float32 1 - a_t / a_prev loses ~1e-4 relative near t = 0.
    tol = 1e-4 if (name, n) == ("ddpm", T) else 1e-5
    for ours, expected in run_both(name, schedule("squaredcos_cap_v2", prediction_type), n, upcast=False):
        np.testing.assert_allclose(ours, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("eta", [0.3, 1.0])
@pytest.mark.parametrize("n", [7, 50])
def test_ddim_eta_matches_diffusers(eta, n):
    for ours, expected in run_both("ddim", schedule(), n, upcast=True, eta=eta):
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["ddim", "ddpm"])
@pytest.mark.parametrize("prediction_type", PREDICTIONS)
def test_clip_sample_matches_diffusers(name, prediction_type):
    spec = schedule("linear", prediction_type, clip_sample=True)
    for ours, expected in run_both(name, spec, 20, upcast=True):
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("beta_schedule", list(BETA_SCHEDULES))
def test_betas_and_alphas_match_diffusers(beta_schedule):
    spec = schedule(beta_schedule)
    ref = reference("ddpm", spec)
    betas = make_betas(spec)
    assert betas.dtype == np.float64 and betas.shape == (T,)
    np.testing.assert_allclose(betas, ref.betas.double().numpy(), rtol=1e-6)  # float32 rounding
    ours = DDPMScheduler(spec).alphas_cumprod
    np.testing.assert_allclose(ours, ref.alphas_cumprod.double().numpy(), rtol=5e-5, atol=1e-7)


@settings(max_examples=60, deadline=None)
@given(n_train=st.integers(1, 2000), data=st.data())
def test_timesteps_match_diffusers_for_any_count(n_train, data):
    n = data.draw(st.integers(1, n_train))
    spec = schedule("linear", n=n_train)
    for name in ("ddim", "ddpm"):
        ours, ref = make_scheduler(name, spec), reference(name, spec)
        ours.set_timesteps(n)
        ref.set_timesteps(n)
        np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
        assert len(ours.timesteps) == n and ours.timesteps[-1] == 0
        assert np.all(np.diff(ours.timesteps) < 0) and ours.timesteps[0] < n_train


@settings(max_examples=40, deadline=None)
@given(
    beta_schedule=st.sampled_from(list(BETA_SCHEDULES)),
    prediction_type=st.sampled_from(PREDICTIONS),
    n=st.integers(1, 100),
    seed=st.integers(0, 2**32 - 1),
)
def test_ddim_with_a_perfect_model_recovers_x0(beta_schedule, prediction_type, n, seed):
    """eta = 0 and the true noise/x0/v at every step: DDIM lands exactly on x0 (alpha_bar = 1 at the end)."""
    sched = DDIMScheduler(schedule(beta_schedule, prediction_type, n=200))
    sched.set_timesteps(min(n, 200))
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-1, 1, (1, 1, 4, 4))
    eps = rng.standard_normal(x0.shape)
    abar = sched.alphas_cumprod
    x = (math.sqrt(abar[sched.timesteps[0]]) * x0 + math.sqrt(1 - abar[sched.timesteps[0]]) * eps).astype(np.float32)
    for t in sched.timesteps:
        a, b = math.sqrt(abar[t]), math.sqrt(1 - abar[t])
        eps_t = (x - a * x0) / b  # the noise that is in x now
        target = {"epsilon": eps_t, "sample": x0, "v_prediction": a * eps_t - b * x0}[prediction_type]
        x = sched.step(target.astype(np.float32), int(t), x)
    np.testing.assert_allclose(x, x0, atol=2e-4)


def test_ddpm_noise_comes_from_the_generator_and_is_reproducible():
    def run(seed):
        sched = DDPMScheduler(schedule())
        sched.set_timesteps(5)
        rng = np.random.default_rng(seed)
        x = np.ones((1, 1, 2, 2), np.float32)
        for t in sched.timesteps:
            x = sched.step(np.zeros_like(x), int(t), x, rng)
        return x

    np.testing.assert_array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def test_ddpm_needs_noise_source_except_at_t0():
    sched = DDPMScheduler(schedule())
    sched.set_timesteps(1)  # the only timestep is 0: no noise needed
    sched.step(np.zeros((1, 1, 2, 2), np.float32), 0, np.zeros((1, 1, 2, 2), np.float32))
    sched.set_timesteps(2)
    with pytest.raises(ValueError, match="rng"):
        sched.step(np.zeros((1, 1, 2, 2), np.float32), int(sched.timesteps[0]), np.zeros((1, 1, 2, 2), np.float32))


@pytest.mark.parametrize("bad", [0, -1, T + 1])
def test_set_timesteps_range(bad):
    with pytest.raises(ValueError, match="num_steps"):
        make_scheduler("ddim", schedule()).set_timesteps(bad)


def test_bad_names_and_eta():
    with pytest.raises(ValueError, match="scheduler"):
        make_scheduler("euler", schedule())
    with pytest.raises(ValueError, match="eta"):
        make_scheduler("ddim", schedule(), eta=1.5)
