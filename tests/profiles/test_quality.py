"""Tests of profiles/quality.py: the Fréchet distance and the shipped evaluator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from profiles.quality import Evaluator, QualityScore, feature_stats, frechet_distance

EVALUATOR_DIR = Path(__file__).resolve().parents[2] / "profiles" / "evaluator" / "digits"


def test_identical_feature_sets_have_zero_distance() -> None:
    feats = np.random.default_rng(0).normal(size=(400, 16))
    mu, sigma = feature_stats(feats)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_shifted_gaussians_match_closed_form() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(8, 8))
    b = rng.normal(size=(8, 8))
    sigma1, sigma2 = a @ a.T + 0.1 * np.eye(8), b @ b.T + 0.1 * np.eye(8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    # Closed form via the eigenvalues of sigma1 @ sigma2 (real and >= 0 for SPD matrices).
    tr_covmean = np.sqrt(np.linalg.eigvals(sigma1 @ sigma2).real).sum()
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-9)
    # Same covariance, shifted mean: the distance is the squared shift.
    shift = np.full(8, 0.5)
    assert frechet_distance(mu1, sigma1, mu1 + shift, sigma1) == pytest.approx(8 * 0.25, rel=1e-6)


def test_scaled_isotropic_gaussians() -> None:
    # N(0, a^2 I) vs N(0, b^2 I) in d dims: d (a - b)^2.
    d, a, b = 5, 2.0, 0.5
    fd = frechet_distance(np.zeros(d), a**2 * np.eye(d), np.zeros(d), b**2 * np.eye(d))
    assert fd == pytest.approx(d * (a - b) ** 2, rel=1e-9)


def test_singular_covariances_stay_finite() -> None:
    rng = np.random.default_rng(2)
    few = rng.normal(size=(3, 32))  # 3 samples in 32 dims: rank-2 covariance
    mu, sigma = feature_stats(few)
    ref_mu, ref_sigma = feature_stats(rng.normal(size=(200, 32)))
    fd = frechet_distance(mu, sigma, ref_mu, ref_sigma)
    assert np.isfinite(fd) and fd > 0
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)


def test_shape_errors() -> None:
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError):
        feature_stats(np.zeros((1, 4)))


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return Evaluator.from_dir(EVALUATOR_DIR)


def test_evaluator_is_accurate_on_heldout_digits(evaluator: Evaluator) -> None:
    score = evaluator.score(evaluator.images, evaluator.labels)
    assert isinstance(score, QualityScore)
    assert score.n == len(evaluator.labels) >= 300
    assert score.accuracy > 0.9
    assert score.frechet_distance == pytest.approx(0.0, abs=1e-6)  # the reference is these images


def test_real_floor_is_far_below_noise_and_wrong_labels(evaluator: Evaluator) -> None:
    floor = evaluator.real_floor()
    assert floor.accuracy > 0.9
    noise = np.random.default_rng(0).uniform(-1, 1, size=(200, 1, 8, 8)).astype(np.float32)
    labels = np.repeat(np.arange(10), 20)
    bad = evaluator.score(noise, labels)
    assert bad.frechet_distance > 10 * floor.frechet_distance
    assert bad.accuracy < 0.5
    # Real images under shuffled labels: same features (FD small), accuracy near chance.
    shuffled = np.roll(evaluator.labels, 7)
    wrong = evaluator.score(evaluator.images, shuffled)
    assert wrong.accuracy < 0.3


def test_blurred_digits_score_worse_than_real(evaluator: Evaluator) -> None:
    images = evaluator.images
    blurred = (images + np.roll(images, 1, axis=3) + np.roll(images, 1, axis=2)) / 3.0
    real = evaluator.real_floor()
    worse = evaluator.score(blurred, evaluator.labels)
    assert worse.frechet_distance > real.frechet_distance


def test_score_validates_input(evaluator: Evaluator) -> None:
    with pytest.raises(ValueError):
        evaluator.score(np.zeros((4, 8, 8), np.float32), np.zeros(4))
    with pytest.raises(ValueError):
        evaluator.score(np.zeros((4, 1, 8, 8), np.float32), np.zeros(3))
    with pytest.raises(ValueError):
        evaluator.score(np.full((4, 1, 8, 8), np.nan, np.float32), np.zeros(4))
