"""Fit the curves of measured model profiles: latency affine in steps, quality against steps.

Three shapes, each least squares in the linear domain, each with its R² (:func:`r_squared`):

* :func:`fit_affine`: ``latency_s(steps) = a_s + b_s_per_step * steps`` (any ``y = a + b * x``).
* :func:`fit_exp_decay`: ``error(steps) = eps0 * exp(-c1 * steps)``, errors >= 0 and possibly 0.
* :func:`fit_saturating`: ``y(steps) = y_sat + slope * min(steps - s_sat, 0)``, a line up to
  ``s_sat`` and flat after (a continuous hinge).

:func:`fit_quality` fits both quality shapes to one metric (accuracy, class probability, Fréchet
distance) and picks the one with the larger R². Steps are denoising step counts (> 0). This module
depends on numpy only; results are plain Python floats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0
_C1_MIN, _C1_MAX, _C1_GRID = 1e-4, 20.0, 400  # per step
_SAT_GRID = 200


def _vector(name: str, values: ArrayLike) -> np.ndarray:
    """``values`` as a finite 1-D float array, else ValueError naming ``name``."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return arr


def _pair(xn: str, x: ArrayLike, yn: str, y: ArrayLike, min_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Two validated vectors of equal length with at least ``min_points`` points."""
    xa, ya = _vector(xn, x), _vector(yn, y)
    if xa.size != ya.size:
        raise ValueError(f"{xn} and {yn} differ in length ({xa.size} != {ya.size})")
    if xa.size < min_points:
        raise ValueError(f"need at least {min_points} points, got {xa.size}")
    return xa, ya


def _out(arr: np.ndarray) -> float | np.ndarray:
    """A 0-d result as a Python float, anything else unchanged."""
    return float(arr) if arr.ndim == 0 else arr


def r_squared(y: ArrayLike, y_hat: ArrayLike) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` of predictions ``y_hat`` for ``y``.

    When ``y`` is constant (``SS_tot == 0``) it is 1.0 if ``SS_res <= 1e-12 * max(1, sum(y**2))``, else 0.0.

    Raises:
        ValueError: Lengths differ, fewer than 2 points, or a value is not finite.
    """
    ya, ha = _pair("y", y, "y_hat", y_hat, 2)
    ss_res = float(np.sum((ya - ha) ** 2))
    ss_tot = float(np.sum((ya - ya.mean()) ** 2))
    if ss_tot == 0.0 or np.all(ya == ya[0]):  # the mean of equal values may round: SS_tot ~ 1e-30
        return 1.0 if ss_res <= 1e-12 * max(1.0, float(ya @ ya)) else 0.0
    return 1.0 - ss_res / ss_tot


@dataclass(frozen=True)
class AffineFit:
    """``y = a + b * x``, e.g. ``latency_s = a + b * steps``.

    Attributes:
        a: Intercept, in the unit of ``y`` (seconds for latency).
        b: Slope, unit of ``y`` per unit of ``x`` (seconds per step).
        r2: R² of the fit.
        residual_std: Standard deviation of ``y - y_hat`` (ddof 2 when n > 2, else 0), unit of ``y``.
        n: Number of points fitted.
    """

    a: float
    b: float
    r2: float
    residual_std: float
    n: int

    def predict(self, x: float | np.ndarray) -> float | np.ndarray:
        """``a + b * x``; a float for a scalar ``x``."""
        return _out(self.a + self.b * np.asarray(x, dtype=float))


def fit_affine(x: ArrayLike, y: ArrayLike) -> AffineFit:
    """Ordinary least squares line through ``(x, y)``.

    Raises:
        ValueError: Bad input, or fewer than 2 distinct ``x`` values.
    """
    xa, ya = _pair("x", x, "y", y, 2)
    xc = xa - xa.mean()
    sxx = float(xc @ xc)
    if np.unique(xa).size < 2 or sxx == 0.0:
        raise ValueError("x needs at least 2 distinct values to fit a line")
    b = float(xc @ (ya - ya.mean())) / sxx
    a = float(ya.mean() - b * xa.mean())
    res = ya - (a + b * xa)
    std = float(np.std(res, ddof=2)) if xa.size > 2 else 0.0
    return AffineFit(a=a, b=b, r2=r_squared(ya, a + b * xa), residual_std=std, n=int(xa.size))


@dataclass(frozen=True)
class ExpDecayFit:
    """``error(s) = eps0 * exp(-c1 * s)`` for ``s`` steps.

    Attributes:
        eps0: Error extrapolated to 0 steps (>= 0), in the unit of the error.
        c1: Decay rate (>= 0), per step; capped at 20 per step (and at 700 / smallest step).
        r2: R² on the error values.
        n: Number of points fitted.
    """

    eps0: float
    c1: float
    r2: float
    n: int

    def predict(self, s: float | np.ndarray) -> float | np.ndarray:
        """The error after ``s`` steps; a float for a scalar ``s``."""
        return _out(self.eps0 * np.exp(-self.c1 * np.asarray(s, dtype=float)))


def _positive_steps(steps: np.ndarray) -> None:
    if np.any(steps <= 0):
        raise ValueError("steps must be > 0")
    if np.unique(steps).size < 2:
        raise ValueError("steps need at least 2 distinct values")


def fit_exp_decay(steps: ArrayLike, error: ArrayLike) -> ExpDecayFit:
    """Least squares fit of ``eps0 * exp(-c1 * steps)`` to ``error`` (linear domain: errors may be 0).

    For each ``c1`` the best ``eps0 >= 0`` is closed form; ``c1`` is searched on ``0`` plus a log grid
    of 1e-4..20 per step, then refined by golden-section search between the best point's neighbours.

    Raises:
        ValueError: Bad input, ``steps <= 0``, fewer than 2 distinct steps, or ``error < 0``.
    """
    s, e = _pair("steps", steps, "error", error, 2)
    _positive_steps(s)
    if np.any(e < 0):
        raise ValueError("error must be >= 0")
    s0 = float(s.min())
    c_max = min(_C1_MAX, 700.0 / s0)  # keeps eps0 = amp * exp(c1 * s0) finite

    def sse_amp(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Shifted so that the largest basis value is 1: no underflow to an all-zero basis.
        basis = np.exp(-np.outer(c, s - s0))
        amp = np.maximum((basis @ e) / np.sum(basis * basis, axis=1), 0.0)
        return np.sum((e - amp[:, None] * basis) ** 2, axis=1), amp

    grid = np.concatenate([[0.0], np.geomspace(min(_C1_MIN, c_max / 10), c_max, _C1_GRID)])
    sse, _ = sse_amp(grid)
    k = int(np.argmin(sse))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    use_log = lo > 0.0  # log-domain search keeps the relative precision of c1
    fwd = np.log if use_log else (lambda v: v)
    inv = np.exp if use_log else (lambda v: v)
    a, b = float(fwd(lo)), float(fwd(hi))
    for _ in range(60):  # bracket shrinks by 0.618**60 ~ 3e-13
        m1, m2 = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
        f = sse_amp(np.array([inv(m1), inv(m2)]))[0]
        a, b = (a, m2) if f[0] <= f[1] else (m1, b)
    cands = np.array([grid[k], float(inv((a + b) / 2))])
    sse_c, amp_c = sse_amp(cands)
    j = int(np.argmin(sse_c))
    c1 = float(cands[j])
    eps0 = float(amp_c[j] * np.exp(c1 * s0))
    return ExpDecayFit(eps0=eps0, c1=c1, r2=r_squared(e, eps0 * np.exp(-c1 * s)), n=int(s.size))


@dataclass(frozen=True)
class SaturatingFit:
    """``y(s) = y_sat + slope * min(s - s_sat, 0)``: linear in steps up to ``s_sat``, flat after.

    Attributes:
        y_sat: The plateau, in the unit of ``y``.
        slope: Unit of ``y`` per step before the plateau; > 0 for a rising quality, < 0 for a falling
            error such as a Fréchet distance, 0 when no measured point lies before the plateau.
        s_sat: Steps where the curve saturates (the largest measured step: not saturated yet).
        r2: R² on ``y``.
        n: Number of points fitted.
    """

    y_sat: float
    slope: float
    s_sat: float
    r2: float
    n: int

    def predict(self, s: float | np.ndarray) -> float | np.ndarray:
        """``y`` after ``s`` steps; a float for a scalar ``s``."""
        return _out(self.y_sat + self.slope * np.minimum(np.asarray(s, dtype=float) - self.s_sat, 0.0))


def _hinge_breakpoints(s: np.ndarray, y: np.ndarray, u: np.ndarray) -> list[float]:
    """Exact breakpoints: per split, where the left line meets the right mean, if between the two steps."""
    out = []
    for k in range(1, u.size - 1):
        left = s <= u[k]
        line = fit_affine(s[left], y[left])
        if line.b != 0.0:
            b = (float(y[~left].mean()) - line.a) / line.b
            if u[k] <= b <= u[k + 1]:
                out.append(b)
    return out


def fit_saturating(steps: ArrayLike, y: ArrayLike) -> SaturatingFit:
    """Least squares fit of the saturating line, searched over the breakpoint ``s_sat``.

    Candidates: every measured step, 200 log-spaced points between the smallest and largest step,
    and each split's exact optimum. For each, ``(y_sat, slope)`` is a linear least squares solved
    exactly; the smallest SSE wins (near-ties go to the smallest ``s_sat``).

    Raises:
        ValueError: Bad input, fewer than 3 points, ``steps <= 0``, or fewer than 2 distinct steps.
    """
    s, v = _pair("steps", steps, "y", y, 3)
    _positive_steps(s)
    u = np.unique(s)
    cands = np.unique(np.concatenate([u, np.geomspace(u[0], u[-1], _SAT_GRID), _hinge_breakpoints(s, v, u)]))
    z = np.minimum(s[None, :] - cands[:, None], 0.0)
    zbar = z.mean(axis=1)
    zc = z - zbar[:, None]
    szz = np.sum(zc * zc, axis=1)
    slope = np.where(szz > 0, (zc @ (v - v.mean())) / np.where(szz > 0, szz, 1.0), 0.0)
    y_sat = v.mean() - slope * zbar
    sse = np.sum((v - y_sat[:, None] - slope[:, None] * z) ** 2, axis=1)
    k = int(np.argmax(sse <= sse.min() + 1e-12 * max(1.0, float(v @ v))))
    fit = SaturatingFit(float(y_sat[k]), float(slope[k]), float(cands[k]), 0.0, int(s.size))
    return SaturatingFit(fit.y_sat, fit.slope, fit.s_sat, r_squared(v, fit.predict(s)), fit.n)


@dataclass(frozen=True)
class QualityFit:
    """Both quality shapes fitted to one metric, and the better one.

    Attributes:
        metric: Metric name, e.g. ``"accuracy"``, ``"class_prob"``, ``"fd"``.
        higher_is_better: True for accuracy-like metrics, False for errors such as FD.
        ceiling: Best value of a higher-is-better metric (error = ceiling - value); None otherwise.
        exp: Exponential decay fitted on the error (the value itself when lower is better).
        saturating: Saturating line fitted on the metric values.
        r2_exp: R² of the exponential fit on the metric values; equals ``exp.r2`` unless some value
            exceeded the ceiling (its error is clipped to 0).
        r2_saturating: R² of the saturating fit on the metric values.
        chosen: ``"exp"`` or ``"saturating"``, the larger R² (ties go to ``"exp"``).
    """

    metric: str
    higher_is_better: bool
    ceiling: float | None
    exp: ExpDecayFit
    saturating: SaturatingFit
    r2_exp: float
    r2_saturating: float
    chosen: str

    def predict_with(self, form: str, s: float | np.ndarray) -> float | np.ndarray:
        """Metric value after ``s`` steps by ``form`` (``"exp"`` or ``"saturating"``)."""
        if form == "saturating":
            return self.saturating.predict(s)
        if form != "exp":
            raise ValueError(f"form must be 'exp' or 'saturating', got {form!r}")
        err = self.exp.predict(s)
        return self.ceiling - err if self.ceiling is not None else err

    def predict(self, s: float | np.ndarray) -> float | np.ndarray:
        """Metric value after ``s`` steps by the chosen form."""
        return self.predict_with(self.chosen, s)


def fit_quality(
    steps: ArrayLike, values: ArrayLike, metric: str, *, higher_is_better: bool, ceiling: float | None = 1.0
) -> QualityFit:
    """Fit a quality metric against steps with both shapes and choose by R².

    Args:
        steps: Denoising step counts (> 0).
        values: Metric values, one per step count.
        metric: Metric name, kept in the result.
        higher_is_better: Whether larger values are better (the error is then ``max(ceiling - value, 0)``).
        ceiling: Best possible value of a higher-is-better metric (1.0 for probabilities and accuracy);
            ignored (stored as None) when lower is better.

    Raises:
        ValueError: Bad input, a higher-is-better metric without a finite ceiling, or a negative
            value of a lower-is-better metric.
    """
    s, v = _pair("steps", steps, "values", values, 3)
    if higher_is_better:
        if ceiling is None or not np.isfinite(ceiling):
            raise ValueError("ceiling must be a finite number for a higher-is-better metric")
        ceiling = float(ceiling)
        error = np.maximum(ceiling - v, 0.0)
    else:
        if np.any(v < 0):
            raise ValueError("values of a lower-is-better metric must be >= 0")
        ceiling, error = None, v
    exp, sat = fit_exp_decay(s, error), fit_saturating(s, v)
    fit = QualityFit(metric, higher_is_better, ceiling, exp, sat, 0.0, sat.r2, "exp")
    r2_exp = r_squared(v, fit.predict_with("exp", s))
    chosen = "saturating" if sat.r2 > r2_exp else "exp"
    return QualityFit(metric, higher_is_better, ceiling, exp, sat, r2_exp, sat.r2, chosen)
