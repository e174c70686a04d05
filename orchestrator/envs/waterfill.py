"""Sum-rate power allocation over parallel channels: a one-step sanity problem whose optimum is known.

Maximise ``sum_n log2(1 + g_n p_n)`` subject to ``sum_n p_n <= P_T``, ``p_n >= 0`` (unit noise power).
Water-filling, ``p_n = max(mu - 1/g_n, 0)`` with the water level ``mu`` set so the powers use the
whole budget, is the exact optimum (``water_filling`` below). This is the example of the
generative-diffusion-policy tutorial (GDMOPT) and of RESEARCH.md §1: 10 channels, the first half of
the gains ~ U(1, 2), the second half ~ U(0, 1), P_T = 3; one-step episodes.

The environment:

- observation: the channel power gains ``g`` (float32, shape (N,)), drawn anew at every ``reset``;
- action: a vector in [-1, 1]^N (what a tanh actor outputs), mapped to powers by ``amend``:
  ``"abs"`` (the tutorial's; default) takes ``|a|``, ``"shift"`` takes ``(a + 1) / 2``; either is
  then scaled to sum to exactly P_T (uniform power if the vector is all zeros). Every action is thus
  feasible and every feasible allocation that spends the budget is reachable;
- reward: ``sum_rate - optimal_sum_rate`` in bit/s/Hz (<= 0; 0 at the optimum). Its mean differs from
  the mean sum rate by a constant, so maximising it maximises the mean sum rate, while the per-draw
  optimum takes out most of the variance between draws;
- every episode terminates after one step; ``info`` holds ``sum_rate``, ``optimal_sum_rate`` (both
  bit/s/Hz) and ``power_w`` (the amended powers, W for unit noise power).
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

AMENDERS = ("abs", "shift")


def water_filling(gains: np.ndarray, total_power: float) -> np.ndarray:
    """The powers that maximise ``sum log2(1 + g p)`` under ``sum p <= total_power`` (exact, closed form).

    Sort the inverse gains ``1/g`` ascending; with the ``k`` best channels active the water level is
    ``mu_k = (P + sum_{i<k} 1/g_(i)) / k``, and the optimum keeps the largest ``k`` with
    ``mu_k > 1/g_(k)`` (the condition holds for every smaller ``k`` and fails for every larger one).

    Args:
        gains: channel power gains, shape (..., N), >= 0 (a zero gain never gets power).
        total_power: the budget P_T, >= 0 (W for unit noise power).

    Returns:
        Powers of the same shape, >= 0, summing to ``total_power`` (to rounding) unless every gain is 0.
    """
    g = np.asarray(gains, np.float64)
    if np.any(g < 0) or total_power < 0:
        raise ValueError("water_filling: gains and total_power must be >= 0")
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(g > 0, 1.0 / np.where(g > 0, g, 1.0), np.inf)
        inv_sorted = np.sort(inv, axis=-1)
        k = np.arange(1, g.shape[-1] + 1)
        levels = (total_power + np.cumsum(inv_sorted, axis=-1)) / k
        active = (levels > inv_sorted).sum(axis=-1, keepdims=True)  # k* (0: nothing gets power)
        mu = np.take_along_axis(levels, np.maximum(active - 1, 0), axis=-1)
        mu = np.where(active > 0, mu, 0.0)
        return np.maximum(mu - inv, 0.0)


def sum_rate(gains: np.ndarray, powers: np.ndarray) -> np.ndarray:
    """``sum_n log2(1 + g_n p_n)`` over the last axis, bit/s/Hz (unit noise power)."""
    return np.log2(1.0 + np.asarray(gains, np.float64) * np.asarray(powers, np.float64)).sum(axis=-1)


def amend(action: np.ndarray, total_power: float, mode: str = "abs") -> np.ndarray:
    """Map actions in [-1, 1]^N (shape (..., N)) onto powers >= 0 that sum to ``total_power``.

    ``"abs"`` weights channels by ``|a|``, ``"shift"`` by ``(a + 1) / 2``; an all-zero weight vector
    gives uniform power.
    """
    a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
    if mode == "abs":
        w = np.abs(a)
    elif mode == "shift":
        w = (a + 1.0) / 2.0
    else:
        raise ValueError(f"amend: mode {mode!r} is not one of {AMENDERS}")
    total = w.sum(axis=-1, keepdims=True)
    uniform = np.full_like(w, 1.0 / w.shape[-1])
    return total_power * np.where(total > 1e-12, w / np.where(total > 1e-12, total, 1.0), uniform)


class WaterfillEnv(gym.Env):
    """One-step power allocation over ``channels`` parallel channels (see the module docstring).

    Args:
        channels: number of channels N.
        total_power: the power budget P_T (W for unit noise power).
        strong_range: (low, high) of the uniform gains of the first ceil(N/2) channels.
        weak_range: (low, high) of the uniform gains of the remaining channels.
        amender: how actions become powers: ``"abs"`` or ``"shift"`` (see ``amend``).
    """

    metadata = {"render_modes": []}  # noqa: RUF012 (Gymnasium's convention)

    def __init__(
        self,
        channels: int = 10,
        total_power: float = 3.0,
        strong_range: tuple[float, float] = (1.0, 2.0),
        weak_range: tuple[float, float] = (0.0, 1.0),
        amender: str = "abs",
    ) -> None:
        if channels < 1:
            raise ValueError(f"channels: {channels} must be >= 1")
        if total_power <= 0:
            raise ValueError(f"total_power: {total_power} must be > 0")
        if amender not in AMENDERS:
            raise ValueError(f"amender: {amender!r} is not one of {AMENDERS}")
        for name, (low, high) in (("strong_range", strong_range), ("weak_range", weak_range)):
            if not 0 <= low <= high:
                raise ValueError(f"{name}: ({low}, {high}) must satisfy 0 <= low <= high")
        self.channels = channels
        self.total_power = float(total_power)
        self.amender = amender
        strong = (channels + 1) // 2
        self._low = np.array([strong_range[0]] * strong + [weak_range[0]] * (channels - strong), np.float32)
        self._high = np.array([strong_range[1]] * strong + [weak_range[1]] * (channels - strong), np.float32)
        self.observation_space = spaces.Box(0.0, float(self._high.max()), (channels,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (channels,), np.float32)
        self._gains = self._low.copy()

    def sample_gains(self, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
        """Gains drawn as in ``reset``: shape (N,) float32, or (n, N) if ``n`` is given."""
        shape = (self.channels,) if n is None else (n, self.channels)
        return rng.uniform(self._low, self._high, size=shape).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._gains = self.sample_gains(self.np_random)
        return self._gains.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        powers = amend(action, self.total_power, self.amender)
        rate = float(sum_rate(self._gains, powers))
        optimum = float(sum_rate(self._gains, water_filling(self._gains, self.total_power)))
        info = {"sum_rate": rate, "optimal_sum_rate": optimum, "power_w": powers}
        return self._gains.copy(), rate - optimum, True, False, info

    def evaluate(self, act: Callable[[np.ndarray], np.ndarray], gains: np.ndarray) -> dict[str, float]:
        """Score a batched policy on fixed draws: mean sum rates and their ratio to water-filling's.

        Args:
            act: maps observations (B, N) to actions (B, N) in [-1, 1].
            gains: the draws, shape (B, N) (e.g. ``sample_gains(rng, 1000)`` from a held-out seed).

        Returns:
            ``sum_rate`` (mean achieved), ``optimal_sum_rate`` (mean water-filling), ``optimality_ratio``
            (their ratio), ``uniform_sum_rate`` and ``uniform_ratio`` (equal power); bit/s/Hz.
        """
        gains = np.asarray(gains, np.float32)
        rate = sum_rate(gains, amend(act(gains), self.total_power, self.amender)).mean()
        optimum = sum_rate(gains, water_filling(gains, self.total_power)).mean()
        uniform = sum_rate(gains, np.full(gains.shape, self.total_power / self.channels)).mean()
        return {
            "sum_rate": float(rate),
            "optimal_sum_rate": float(optimum),
            "optimality_ratio": float(rate / optimum),
            "uniform_sum_rate": float(uniform),
            "uniform_ratio": float(uniform / optimum),
        }
