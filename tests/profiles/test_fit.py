"""Tests of profiles/fit.py: known parameters recovered, the better quality shape chosen, bad input refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiles.fit import (
    AffineFit,
    fit_affine,
    fit_exp_decay,
    fit_quality,
    fit_saturating,
    r_squared,
)

LOG_STEPS = np.array([1, 2, 4, 8, 16, 32, 64, 128], dtype=float)
DENSE_STEPS = np.arange(1, 65, dtype=float)
# Measured digits-mlp-s profile: evaluator accuracy and Fréchet distance against steps.
REAL_ACC = [0.126, 0.974, 0.974, 0.992, 0.984, 0.978, 0.980, 0.972]
REAL_FD = [34.8, 2.94, 1.48, 1.08, 1.07, 1.12, 1.17, 1.28]


def _exp(s: np.ndarray, eps0: float = 0.8, c1: float = 0.35) -> np.ndarray:
    return eps0 * np.exp(-c1 * s)


def _sat(s: np.ndarray, y_sat: float = 0.95, slope: float = 0.05, s_sat: float = 12.0) -> np.ndarray:
    return y_sat + slope * np.minimum(s - s_sat, 0.0)


# --- r_squared ---------------------------------------------------------------------------------------


def test_r_squared_values() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert r_squared(y, y) == 1.0
    assert r_squared(y, np.full(4, y.mean())) == pytest.approx(0.0, abs=1e-15)
    assert r_squared([1.0, 2.0, 3.0], [1.0, 2.0, 4.0]) == pytest.approx(0.5)  # SS_res 1, SS_tot 2
    assert r_squared(y, y[::-1]) < 0  # worse than the mean


def test_r_squared_constant_y() -> None:
    assert r_squared([2.0, 2.0, 2.0], [2.0, 2.0, 2.0 + 1e-9]) == 1.0
    assert r_squared([2.0, 2.0, 2.0], [2.0, 2.0, 2.1]) == 0.0
    assert r_squared([0.0, 0.0], [0.0, 0.0]) == 1.0
    y = [26.01569090838312] * 5  # np.mean rounds: SS_tot ~ 6e-29, not 0; still the constant case
    assert r_squared(y, np.full(5, 26.01569090838312 + 1e-13)) == 1.0


@pytest.mark.parametrize(
    ("y", "y_hat", "match"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], "differ in length"),
        ([1.0], [1.0], "at least 2"),
        ([1.0, float("nan")], [1.0, 2.0], "finite"),
        ([1.0, 2.0], [1.0, float("inf")], "finite"),
        ([[1.0, 2.0]], [[1.0, 2.0]], "1-D"),
    ],
)
def test_r_squared_refuses_bad_input(y, y_hat, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        r_squared(y, y_hat)


# --- affine ------------------------------------------------------------------------------------------


def test_affine_noiseless() -> None:
    fit = fit_affine(list(LOG_STEPS), list(0.012 + 0.0031 * LOG_STEPS))
    assert isinstance(fit, AffineFit) and isinstance(fit.a, float) and isinstance(fit.r2, float)
    assert fit.a == pytest.approx(0.012, rel=1e-9)
    assert fit.b == pytest.approx(0.0031, rel=1e-9)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.residual_std == pytest.approx(0.0, abs=1e-12)
    assert fit.n == 8
    assert fit.predict(10.0) == pytest.approx(0.012 + 0.031)
    assert isinstance(fit.predict(10.0), float)
    np.testing.assert_allclose(fit.predict(np.array([0.0, 100.0])), [0.012, 0.322])


def test_affine_noisy() -> None:
    rng = np.random.default_rng(7)
    x = np.tile(LOG_STEPS, 20)
    y = 0.05 + 0.003 * x + rng.normal(0.0, 0.01, x.size)
    fit = fit_affine(x, y)
    assert fit.a == pytest.approx(0.05, abs=0.005)
    assert fit.b == pytest.approx(0.003, abs=1e-4)
    assert fit.residual_std == pytest.approx(0.01, rel=0.15)
    assert 0.9 < fit.r2 < 1.0


def test_affine_two_points_has_zero_residual_std() -> None:
    fit = fit_affine([1.0, 3.0], [1.0, 2.0])
    assert (fit.a, fit.b, fit.residual_std, fit.n) == (pytest.approx(0.5), pytest.approx(0.5), 0.0, 2)


@settings(max_examples=60, deadline=None)
@given(
    a=st.floats(-100.0, 100.0, allow_nan=False),
    b=st.floats(-10.0, 10.0, allow_nan=False),
    x=st.lists(st.integers(1, 256), min_size=2, max_size=12, unique=True),
)
def test_affine_recovers_random_lines(a: float, b: float, x: list[int]) -> None:
    xs = np.array(x, dtype=float)
    fit = fit_affine(xs, a + b * xs)
    scale = 1.0 + abs(a) + abs(b) * xs.max()
    assert fit.a == pytest.approx(a, abs=1e-9 * scale)
    assert fit.b == pytest.approx(b, abs=1e-9 * scale)
    if abs(b) * np.ptp(xs) > 1e-6 * scale:  # a line that varies beyond float rounding of its values: R² = 1
        assert fit.r2 == pytest.approx(1.0, abs=1e-9)


def test_affine_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="distinct"):
        fit_affine([4.0, 4.0, 4.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="differ in length"):
        fit_affine([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="at least 2"):
        fit_affine([1.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        fit_affine([1.0, float("nan")], [1.0, 2.0])


# --- exponential decay -------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [np.geomspace(1, 64, 7), DENSE_STEPS], ids=["log", "dense"])
def test_exp_decay_noiseless(steps: np.ndarray) -> None:
    fit = fit_exp_decay(steps, _exp(steps))
    assert fit.eps0 == pytest.approx(0.8, rel=1e-3)
    assert fit.c1 == pytest.approx(0.35, rel=1e-3)
    assert fit.r2 == pytest.approx(1.0, abs=1e-9)
    assert fit.n == steps.size
    assert fit.predict(3.0) == pytest.approx(0.8 * np.exp(-1.05), rel=1e-3)


def test_exp_decay_noisy() -> None:
    rng = np.random.default_rng(3)
    error = _exp(DENSE_STEPS) * (1.0 + rng.normal(0.0, 0.01, DENSE_STEPS.size))  # 1 %: c1, eps0 within ~1 % (1 sd)
    fit = fit_exp_decay(DENSE_STEPS, error)
    assert fit.eps0 == pytest.approx(0.8, rel=0.03)
    assert fit.c1 == pytest.approx(0.35, rel=0.03)
    assert fit.r2 > 0.99


def test_exp_decay_with_zero_errors_and_flat_data() -> None:
    zero = fit_exp_decay(LOG_STEPS, np.zeros(8))
    assert (zero.eps0, zero.r2) == (0.0, 1.0)
    flat = fit_exp_decay(LOG_STEPS, np.full(8, 0.3))  # best c1 is 0: a constant
    assert flat.c1 == pytest.approx(0.0, abs=1e-9)
    assert flat.eps0 == pytest.approx(0.3, rel=1e-6)
    exact_zero_tail = fit_exp_decay([1, 2, 4, 8], [0.5, 0.25, 0.0625, 0.0])  # 0 is valid, log-domain fits fail
    assert exact_zero_tail.c1 == pytest.approx(np.log(2.0), rel=0.05)


def test_exp_decay_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="error must be >= 0"):
        fit_exp_decay([1, 2, 4], [0.5, -0.1, 0.0])
    with pytest.raises(ValueError, match="steps must be > 0"):
        fit_exp_decay([0, 2, 4], [0.5, 0.1, 0.0])
    with pytest.raises(ValueError, match="distinct"):
        fit_exp_decay([2, 2, 2], [0.5, 0.1, 0.0])
    with pytest.raises(ValueError, match="finite"):
        fit_exp_decay([1, 2, 4], [0.5, float("nan"), 0.0])


# --- saturating --------------------------------------------------------------------------------------


def test_saturating_rising() -> None:
    fit = fit_saturating(LOG_STEPS, _sat(LOG_STEPS))
    assert fit.y_sat == pytest.approx(0.95, abs=1e-9)
    assert fit.slope == pytest.approx(0.05, rel=1e-6)
    assert fit.s_sat == pytest.approx(12.0, rel=1e-6)
    assert fit.r2 == pytest.approx(1.0, abs=1e-9)
    assert fit.predict(2.0) == pytest.approx(0.45)
    np.testing.assert_allclose(fit.predict(np.array([100.0, 6.0])), [0.95, 0.65])


def test_saturating_falling_like_fd() -> None:
    fd = _sat(LOG_STEPS, y_sat=1.1, slope=-2.0, s_sat=6.0)
    fit = fit_saturating(list(LOG_STEPS), list(fd))
    assert (fit.y_sat, fit.slope, fit.s_sat) == (
        pytest.approx(1.1, abs=1e-9),
        pytest.approx(-2.0, rel=1e-6),
        pytest.approx(6.0, rel=1e-6),
    )


def test_saturating_noisy_dense() -> None:
    rng = np.random.default_rng(11)
    y = _sat(DENSE_STEPS) + rng.normal(0.0, 0.005, DENSE_STEPS.size)
    fit = fit_saturating(DENSE_STEPS, y)
    assert fit.y_sat == pytest.approx(0.95, abs=0.005)
    assert fit.slope == pytest.approx(0.05, rel=0.05)
    assert fit.s_sat == pytest.approx(12.0, abs=0.5)


def test_saturating_constant_has_zero_slope() -> None:
    fit = fit_saturating(LOG_STEPS, np.full(8, 0.7))
    assert (fit.y_sat, fit.slope, fit.r2) == (pytest.approx(0.7), 0.0, 1.0)


def test_saturating_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        fit_saturating([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="distinct"):
        fit_saturating([4, 4, 4], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="steps must be > 0"):
        fit_saturating([-1, 2, 4], [0.1, 0.2, 0.3])


# --- quality -----------------------------------------------------------------------------------------


def test_quality_picks_exp_for_exponential_data() -> None:
    rng = np.random.default_rng(5)
    acc = 1.0 - _exp(DENSE_STEPS) + rng.normal(0.0, 0.003, DENSE_STEPS.size)
    fit = fit_quality(DENSE_STEPS, acc, "accuracy", higher_is_better=True)
    assert fit.chosen == "exp"
    assert fit.r2_exp > fit.r2_saturating
    probe = np.array([1.0, 3.0, 10.0, 50.0])
    np.testing.assert_allclose(fit.predict(probe), 1.0 - _exp(probe), atol=0.01)
    assert fit.predict(3.0) == fit.predict_with("exp", 3.0)


def test_quality_picks_saturating_for_saturating_data() -> None:
    rng = np.random.default_rng(6)
    acc = _sat(DENSE_STEPS) + rng.normal(0.0, 0.005, DENSE_STEPS.size)
    fit = fit_quality(DENSE_STEPS, acc, "class_prob", higher_is_better=True)
    assert fit.chosen == "saturating"
    assert fit.r2_saturating > fit.r2_exp
    probe = np.array([1.0, 5.0, 12.0, 40.0])
    np.testing.assert_allclose(fit.predict(probe), _sat(probe), atol=0.01)
    assert fit.predict_with("saturating", 5.0) == fit.saturating.predict(5.0)


def test_quality_lower_is_better_uses_values_as_error() -> None:
    fd = _exp(DENSE_STEPS, eps0=30.0, c1=0.5)
    fit = fit_quality(DENSE_STEPS, fd, "fd", higher_is_better=False)
    assert fit.ceiling is None
    assert fit.exp.eps0 == pytest.approx(30.0, rel=1e-3)
    assert fit.chosen == "exp"
    assert fit.predict(2.0) == pytest.approx(30.0 * np.exp(-1.0), rel=1e-3)


@pytest.mark.parametrize(
    ("values", "higher", "metric"), [(REAL_ACC, True, "accuracy"), (REAL_FD, False, "fd")], ids=["acc", "fd"]
)
def test_quality_real_digits_profile(values: list[float], higher: bool, metric: str) -> None:
    fit = fit_quality(LOG_STEPS, values, metric, higher_is_better=higher)
    assert fit.r2_exp >= 0.9
    assert fit.r2_saturating >= 0.9
    assert fit.chosen == ("saturating" if fit.r2_saturating > fit.r2_exp else "exp")
    assert fit.r2_exp == pytest.approx(fit.exp.r2, abs=1e-12)  # value = ceiling - error: no value above 1
    assert fit.metric == metric and fit.higher_is_better is higher


def test_quality_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="ceiling"):
        fit_quality(LOG_STEPS, REAL_ACC, "accuracy", higher_is_better=True, ceiling=None)
    with pytest.raises(ValueError, match="must be >= 0"):
        fit_quality([1, 2, 4], [3.0, -1.0, 0.5], "fd", higher_is_better=False)
    with pytest.raises(ValueError, match="differ in length"):
        fit_quality([1, 2, 4], [0.5, 0.6], "accuracy", higher_is_better=True)
    fit = fit_quality(LOG_STEPS, REAL_ACC, "accuracy", higher_is_better=True)
    with pytest.raises(ValueError, match="form"):
        fit.predict_with("linear", 4.0)
