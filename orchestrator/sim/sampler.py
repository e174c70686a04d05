"""Draw a request's compute time, overhead, energy and quality from a measured model profile.

Every value is *modeled* (drawn from the profile, labelled so), never presented as measured.

* At a measured step count the point's own mean and standard deviation are used; between measured
  step counts mean and std are interpolated linearly in steps; beyond them the mean is
  extrapolated linearly from the two nearest points (never below 0) and the nearest std is kept.
  Quality between measured step counts takes its mean from the profile's chosen fit instead.
* Compute time: a normal draw truncated at 0.
* Overhead (what a client sees on top of the agent's compute: gRPC, serialisation, hand-offs):
  the point's ``latency_s - compute_s``, interpolated likewise.
* Quality (the evaluator's class probability of one image, in [0, 1]): a Beta draw with the
  point's mean and standard deviation (method of moments), so its mean is the measured mean.
* Energy: the profile's energy fit when the device measured energy; otherwise, when the device's
  power under load is known, that power times the drawn compute time; otherwise unavailable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from profiles.profile import ModelProfile

MODELED = "modeled"
UNAVAILABLE = "unavailable"


def interpolate(xs: Sequence[float], ys: Sequence[float], x: float, *, extrapolate: bool = True) -> float:
    """``y(x)`` linear between points; beyond them linear from the two nearest (or the nearest value)."""
    if len(xs) != len(ys) or not xs:
        raise ValueError("interpolate: need as many y as x values, at least one")
    if len(xs) == 1:
        return float(ys[0])
    if xs[0] <= x <= xs[-1]:
        return float(np.interp(x, xs, ys))
    if not extrapolate:
        return float(ys[0] if x < xs[0] else ys[-1])
    i, j = (0, 1) if x < xs[0] else (len(xs) - 2, len(xs) - 1)
    slope = (ys[j] - ys[i]) / (xs[j] - xs[i])
    return float(ys[i] + slope * (x - xs[i]))


def beta_draw(rng: np.random.Generator, mean: float, std: float) -> float:
    """A Beta draw in [0, 1] with the given mean and std (std capped to what a Beta allows)."""
    mean = min(max(mean, 1e-6), 1.0 - 1e-6)
    var_max = mean * (1.0 - mean)
    var = min(std * std, 0.999 * var_max)
    if var <= 1e-12:
        return mean
    k = var_max / var - 1.0
    return float(rng.beta(mean * k, (1.0 - mean) * k))


@dataclass(frozen=True)
class Draw:
    """One modeled request: compute and overhead times, s; energy, J (None: unavailable); quality."""

    compute_s: float
    overhead_s: float
    energy_j: float | None
    energy_source: str
    quality: float


class ModelSampler:
    """Draws for one model on one device from its profile (batch-1 points).

    Args:
        profile: the model's profile on the device.
        power_w: the device's power under load, W (used when the profile has no energy), or None.
    """

    def __init__(self, profile: ModelProfile, power_w: float | None = None) -> None:
        points = profile.points_at(1)
        if len(points) < 2:
            raise ValueError(f"{profile.model}/{profile.device}: need at least 2 batch-1 points")
        self.profile = profile
        self.power_w = power_w
        self._steps = [float(p.steps) for p in points]
        self._compute = [p.compute_s for p in points]
        self._compute_std = [p.compute_s_std for p in points]
        self._overhead = [max(p.latency_s - p.compute_s, 0.0) for p in points]
        scored = [p for p in points if p.class_prob is not None]
        self._q_steps = [float(p.steps) for p in scored]
        self._q_mean = {p.steps: float(p.class_prob) for p in scored}  # type: ignore[arg-type]
        self._q_std = [float(p.class_prob_std) for p in scored]  # type: ignore[arg-type]
        self._q_fit = profile.quality_fit("class_prob") if "class_prob" in profile.fits.quality else None
        self._energy = profile.energy_fit(1)
        self.load_time_s = profile.load.load_time_s
        self.mem_bytes = profile.load.mem_bytes

    def compute_stats(self, steps: int) -> tuple[float, float]:
        """Mean and std of the compute time at ``steps``, s."""
        mean = max(interpolate(self._steps, self._compute, steps), 0.0)
        return mean, max(interpolate(self._steps, self._compute_std, steps, extrapolate=False), 0.0)

    def overhead_s(self, steps: int) -> float:
        return max(interpolate(self._steps, self._overhead, steps, extrapolate=False), 0.0)

    def quality_stats(self, steps: int) -> tuple[float, float] | None:
        """Mean and std of the per-image class probability at ``steps``; None when never scored."""
        if not self._q_steps:
            return None
        if steps in self._q_mean:
            mean = self._q_mean[steps]
        elif self._q_fit is not None:
            mean = float(self._q_fit.predict(float(steps)))
        else:
            mean = interpolate(self._q_steps, [self._q_mean[int(s)] for s in self._q_steps], steps, extrapolate=False)
        std = interpolate(self._q_steps, self._q_std, steps, extrapolate=False)
        return min(max(mean, 0.0), 1.0), max(std, 0.0)

    def mean_energy_j(self, steps: int) -> float | None:
        """The mean energy of a request at ``steps``, J, as ``draw`` models it; None when unavailable."""
        if self._energy is not None:
            return max(float(self._energy.predict(float(steps))), 0.0)
        return self.power_w * self.compute_stats(steps)[0] if self.power_w is not None else None

    def draw(self, steps: int, rng: np.random.Generator) -> Draw:
        """One modeled request at ``steps`` (batch 1)."""
        mean, std = self.compute_stats(steps)
        compute_s = max(float(rng.normal(mean, std)), 0.0) if std > 0 else mean
        if self._energy is not None:
            energy: float | None = max(float(self._energy.predict(float(steps))), 0.0)
        elif self.power_w is not None:
            energy = self.power_w * compute_s
        else:
            energy = None
        stats = self.quality_stats(steps)
        quality = beta_draw(rng, *stats) if stats is not None else math.nan
        return Draw(compute_s, self.overhead_s(steps), energy, MODELED if energy is not None else UNAVAILABLE, quality)
