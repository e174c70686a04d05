"""DDPM and DDIM samplers in numpy.

Coefficients are computed in float64; samples are computed in float64 and returned as float32. The
behaviour follows the defaults of diffusers' ``DDPMScheduler`` / ``DDIMScheduler`` (``leading``
timestep spacing, ``steps_offset = 0``, DDPM ``fixed_small`` posterior variance, DDIM
``set_alpha_to_one = True``, no dynamic thresholding) and is tested against them; the code is our own.

Usage::

    sched = make_scheduler("ddim", spec.schedule, eta=0.0)
    sched.set_timesteps(steps)
    for t in sched.timesteps:
        x = sched.step(model(x, t), int(t), x, rng)

A deterministic DDIM step without clipping (``eta = 0``, ``clip_sample = false``) is affine in the
sample and the model output; :meth:`DDIMScheduler.affine_coefficients` gives its per-step
coefficients so that a caller can run the loop in a few float32 operations per step.
"""

from __future__ import annotations

import math

import numpy as np

from node_agent.runtime.repository import ScheduleSpec

MAX_BETA = 0.999  # cap of the squaredcos_cap_v2 schedule


def make_betas(schedule: ScheduleSpec) -> np.ndarray:
    """Training betas, float64 [T].

    Raises:
        ValueError: Unknown ``beta_schedule``.
    """
    n = schedule.num_train_timesteps
    if schedule.beta_schedule == "linear":
        return np.linspace(schedule.beta_start, schedule.beta_end, n, dtype=np.float64)
    if schedule.beta_schedule == "scaled_linear":
        return np.linspace(schedule.beta_start**0.5, schedule.beta_end**0.5, n, dtype=np.float64) ** 2
    if schedule.beta_schedule == "squaredcos_cap_v2":
        # Nichol & Dhariwal cosine schedule: alpha_bar(s) = cos^2((s + 0.008) / 1.008 * pi / 2).
        s = np.arange(n + 1, dtype=np.float64) / n
        alpha_bar = np.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
        return np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], MAX_BETA)
    raise ValueError(f"unknown beta_schedule {schedule.beta_schedule!r}")


class _Scheduler:
    """Shared state: the schedule, the chosen timesteps and the x0 / epsilon estimates."""

    def __init__(self, schedule: ScheduleSpec) -> None:
        self.schedule = schedule
        self.num_train_timesteps = schedule.num_train_timesteps
        self.alphas_cumprod = np.cumprod(1.0 - make_betas(schedule))  # float64 [T]
        self.timesteps = np.arange(self.num_train_timesteps - 1, -1, -1, dtype=np.int64)
        self.step_ratio = 1

    def set_timesteps(self, num_steps: int) -> None:
        """Choose ``num_steps`` timesteps in 1..T, "leading" spacing: ``[(n-1)k, ..., k, 0]``, ``k = T // n``.

        Raises:
            ValueError: ``num_steps`` outside 1..T.
        """
        if isinstance(num_steps, bool) or not 1 <= int(num_steps) <= self.num_train_timesteps:
            raise ValueError(f"num_steps must be in 1..{self.num_train_timesteps}, got {num_steps}")
        self.step_ratio = self.num_train_timesteps // int(num_steps)
        self.timesteps = np.arange(int(num_steps) - 1, -1, -1, dtype=np.int64) * self.step_ratio

    def affine_coefficients(self) -> np.ndarray | None:
        """Per-step ``(a, b)`` with ``step(out, t, x) == a * x + b * out``, or None if a step is not affine.

        The base samplers are stochastic; see :meth:`DDIMScheduler.affine_coefficients`.
        """
        return None

    def _alphas(self, t: int, final: float) -> tuple[float, float]:
        """(alpha_bar at ``t``, alpha_bar at the previous timestep, or ``final`` past the end)."""
        prev_t = t - self.step_ratio
        return float(self.alphas_cumprod[t]), float(self.alphas_cumprod[prev_t]) if prev_t >= 0 else final

    def _x0_and_eps(
        self, model_output: np.ndarray, sample: np.ndarray, alpha_t: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Estimates of x0 (clipped if configured) and of the noise, float64."""
        a, b = math.sqrt(alpha_t), math.sqrt(1.0 - alpha_t)
        kind = self.schedule.prediction_type
        if kind == "epsilon":
            x0, eps = (sample - b * model_output) / a, model_output
        elif kind == "v_prediction":
            x0, eps = a * sample - b * model_output, a * model_output + b * sample
        elif kind == "sample":
            x0, eps = model_output, (sample - a * model_output) / b
        else:
            raise ValueError(f"unknown prediction_type {kind!r}")
        if self.schedule.clip_sample:
            bound = self.schedule.clip_sample_range
            x0 = np.clip(x0, -bound, bound)
        return x0, eps

    @staticmethod
    def _noise(shape: tuple[int, ...], rng: np.random.Generator | None, noise: np.ndarray | None) -> np.ndarray:
        if noise is not None:
            if noise.shape != shape:
                raise ValueError(f"noise shape {noise.shape} != sample shape {shape}")
            return np.asarray(noise, dtype=np.float64)
        if rng is None:
            raise ValueError("a random generator (rng) or explicit noise is needed for a stochastic step")
        return rng.standard_normal(shape, dtype=np.float32).astype(np.float64)


class DDPMScheduler(_Scheduler):
    """Ancestral DDPM sampler with the "fixed_small" posterior variance (Ho et al. 2020, eq. 6-7).

    Args:
        schedule: The model's training schedule.
    """

    def step(
        self,
        model_output: np.ndarray,
        t: int,
        sample: np.ndarray,
        rng: np.random.Generator | None = None,
        *,
        noise: np.ndarray | None = None,
    ) -> np.ndarray:
        """One reverse step from timestep ``t`` to the previous chosen timestep.

        Args:
            model_output: Denoiser output at ``t`` [B, C, H, W].
            t: Current training timestep (an element of ``timesteps``).
            sample: Current sample x_t [B, C, H, W].
            rng: Source of the variance noise (drawn only when ``t > 0``).
            noise: Explicit standard-normal noise instead of ``rng`` (tests, replays).

        Returns:
            x_prev, float32.
        """
        x_t = np.asarray(sample, dtype=np.float64)
        alpha_t, alpha_prev = self._alphas(int(t), 1.0)
        x0, _ = self._x0_and_eps(np.asarray(model_output, dtype=np.float64), x_t, alpha_t)
        beta_t = 1.0 - alpha_t / alpha_prev  # effective beta between the two chosen timesteps
        mean = (math.sqrt(alpha_prev) * beta_t * x0 + math.sqrt(1.0 - beta_t) * (1.0 - alpha_prev) * x_t) / (
            1.0 - alpha_t
        )
        if t > 0:
            variance = max((1.0 - alpha_prev) / (1.0 - alpha_t) * beta_t, 1e-20)
            mean = mean + math.sqrt(variance) * self._noise(x_t.shape, rng, noise)
        return mean.astype(np.float32)


class DDIMScheduler(_Scheduler):
    """DDIM sampler (Song et al. 2021, eq. 12 and 16); ``eta = 0`` is deterministic, 1 is DDPM-like.

    Args:
        schedule: The model's training schedule.
        eta: Weight of the added noise, in [0, 1].
    """

    def __init__(self, schedule: ScheduleSpec, eta: float = 0.0) -> None:
        super().__init__(schedule)
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {eta}")
        self.eta = float(eta)

    def affine_coefficients(self) -> np.ndarray | None:
        """Per-step ``(a, b)``, float64 [num_steps, 2], such that :meth:`step` at ``timesteps[i]`` is
        ``a[i] * sample + b[i] * model_output`` (up to rounding); None unless ``eta = 0`` and no clipping.

        Follows :meth:`step`: x0 and epsilon are linear in (sample, model_output) for every
        prediction type, and the step combines them with ``sqrt(alpha_prev)`` and ``sqrt(1 - alpha_prev)``.
        """
        if self.eta > 0 or self.schedule.clip_sample:
            return None
        prev_t = self.timesteps - self.step_ratio
        alpha_t = self.alphas_cumprod[self.timesteps]
        alpha_prev = np.where(prev_t >= 0, self.alphas_cumprod[np.maximum(prev_t, 0)], 1.0)
        a, b = np.sqrt(alpha_t), np.sqrt(1.0 - alpha_t)
        if not (np.all(a > 0) and np.all(b > 0)):  # degenerate schedule: leave it to step()
            return None
        # x0 = p * sample + q * model_output, eps = r * sample + s * model_output
        kind = self.schedule.prediction_type
        if kind == "epsilon":
            p, q, r, s = 1.0 / a, -b / a, 0.0, 1.0
        elif kind == "v_prediction":
            p, q, r, s = a, -b, b, a
        elif kind == "sample":
            p, q, r, s = 0.0, 1.0, 1.0 / b, -a / b
        else:
            raise ValueError(f"unknown prediction_type {kind!r}")
        to_x0, to_eps = np.sqrt(alpha_prev), np.sqrt(np.maximum(1.0 - alpha_prev, 0.0))
        return np.stack([to_x0 * p + to_eps * r, to_x0 * q + to_eps * s], axis=1)

    def step(
        self,
        model_output: np.ndarray,
        t: int,
        sample: np.ndarray,
        rng: np.random.Generator | None = None,
        *,
        noise: np.ndarray | None = None,
    ) -> np.ndarray:
        """One DDIM step from timestep ``t`` to ``t - T // num_steps`` (alpha_bar = 1 past the end).

        Args:
            model_output: Denoiser output at ``t`` [B, C, H, W].
            t: Current training timestep (an element of ``timesteps``).
            sample: Current sample x_t [B, C, H, W].
            rng: Source of the variance noise (drawn only when ``eta > 0``).
            noise: Explicit standard-normal noise instead of ``rng``.

        Returns:
            x_prev, float32.
        """
        x_t = np.asarray(sample, dtype=np.float64)
        alpha_t, alpha_prev = self._alphas(int(t), 1.0)
        x0, eps = self._x0_and_eps(np.asarray(model_output, dtype=np.float64), x_t, alpha_t)
        variance = (1.0 - alpha_prev) / (1.0 - alpha_t) * (1.0 - alpha_t / alpha_prev)
        std_dev = self.eta * math.sqrt(variance)
        x_prev = math.sqrt(alpha_prev) * x0 + math.sqrt(max(1.0 - alpha_prev - std_dev**2, 0.0)) * eps
        if self.eta > 0:
            x_prev = x_prev + std_dev * self._noise(x_t.shape, rng, noise)
        return x_prev.astype(np.float32)


def make_scheduler(name: str, schedule: ScheduleSpec, eta: float = 0.0) -> DDPMScheduler | DDIMScheduler:
    """Build a sampler by name (``ddim`` or ``ddpm``; ``eta`` applies to DDIM only).

    Raises:
        ValueError: Unknown name or ``eta`` out of [0, 1].
    """
    if name == "ddim":
        return DDIMScheduler(schedule, eta=eta)
    if name == "ddpm":
        return DDPMScheduler(schedule)
    raise ValueError(f"unknown scheduler {name!r}; expected ddim or ddpm")
