"""Tests of scripts/quality_curve.py (the reference DDIM + CFG sampler) and of the shipped models' quality."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from quality_curve import OnnxModel, ddim_timesteps, sample  # noqa: E402

from profiles.quality import Evaluator  # noqa: E402

SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "prediction_type": "epsilon",
    "clip_sample": False,
    "clip_sample_range": 1.0,
}


class FakeSession:
    """Stands in for an ORT denoiser session: eps is a fixed smooth function of (x, t, y)."""

    def __init__(self) -> None:
        self.calls: list[np.ndarray] = []

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        x, t, y = feeds["x"], feeds["t"], feeds["y"]
        self.calls.append(t)
        scale = (0.3 + t / 2000.0)[:, None, None, None] + 0.05 * (y == 10)[:, None, None, None]
        return [(np.tanh(x) * scale).astype(np.float32)]


def fake_model() -> OnnxModel:
    spec = {
        "kind": "pixel",
        "image": {"channels": 1, "height": 8, "width": 8, "value_min": -10.0, "value_max": 10.0},
        "classes": {"count": 10, "null_label": 10},
        "schedule": SCHEDULE,
    }
    return OnnxModel(spec, FakeSession(), None)  # type: ignore[arg-type]


def test_trailing_timesteps() -> None:
    assert ddim_timesteps(1, 1000).tolist() == [999]
    assert ddim_timesteps(4, 1000).tolist() == [999, 749, 499, 249]
    ts = ddim_timesteps(128, 1000)
    assert len(ts) == 128 and ts[0] == 999 and ts[-1] >= 0 and np.all(np.diff(ts) < 0)
    assert ddim_timesteps(4, 1000, "leading").tolist() == [750, 500, 250, 0]
    assert ddim_timesteps(1, 1000, "leading").tolist() == [0]


def test_cfg_runs_one_batch_of_two_b_per_step() -> None:
    model = fake_model()
    sample(model, np.arange(3), 4, 2.0, seed=0)
    session = model.denoiser
    assert len(session.calls) == 4
    assert all(len(t) == 6 for t in session.calls)
    assert [int(t[0]) for t in session.calls] == [999, 749, 499, 249]


@pytest.mark.parametrize("spacing", ["trailing", "leading"])
@pytest.mark.parametrize("steps", [1, 4, 8, 50])
def test_numpy_ddim_equals_diffusers_when_steps_divide_t(steps: int, spacing: str) -> None:
    pytest.importorskip("diffusers")
    labels = np.arange(10)
    ours = sample(fake_model(), labels, steps, 2.0, seed=3, sampler="numpy", spacing=spacing)
    ref = sample(fake_model(), labels, steps, 2.0, seed=3, sampler="diffusers", spacing=spacing)
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-4)


def test_diffusers_trailing_skips_noise_levels_when_steps_do_not_divide_t() -> None:
    # diffusers steps to t - T // steps, not to the next listed timestep: with 128 steps those differ.
    pytest.importorskip("diffusers")
    labels = np.arange(10)
    ours = sample(fake_model(), labels, 128, 2.0, seed=3, sampler="numpy")
    ref = sample(fake_model(), labels, 128, 2.0, seed=3, sampler="diffusers")
    assert np.abs(ours - ref).max() > 1e-3
    # With leading spacing the listed timesteps are exactly T // steps apart, so they agree again.
    ours = sample(fake_model(), labels, 128, 2.0, seed=3, sampler="numpy", spacing="leading")
    ref = sample(fake_model(), labels, 128, 2.0, seed=3, sampler="diffusers", spacing="leading")
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return Evaluator.from_dir(ROOT / "profiles" / "evaluator" / "digits")


@pytest.mark.parametrize("name", ["digits-mlp-s", "digits-resmlp-l", "digits-ldm"])
def test_shipped_model_quality_rises_with_steps(name: str, evaluator: Evaluator) -> None:
    model = OnnxModel.open(ROOT / "profiles" / "models" / name)
    labels = np.repeat(np.arange(10), 10)
    g = model.spec["defaults"]["guidance"]
    one = evaluator.score(sample(model, labels, 1, g, seed=0), labels)
    many = evaluator.score(sample(model, labels, 16, g, seed=0), labels)
    assert many.accuracy > 0.9 and many.accuracy > one.accuracy
    assert many.frechet_distance < one.frechet_distance / 4


def test_large_pixel_model_beats_small_at_saturation(evaluator: Evaluator) -> None:
    labels = np.repeat(np.arange(10), 20)
    fd = {}
    for name in ("digits-mlp-s", "digits-resmlp-l"):
        model = OnnxModel.open(ROOT / "profiles" / "models" / name)
        images = sample(model, labels, 32, model.spec["defaults"]["guidance"], seed=1)
        fd[name] = evaluator.score(images, labels).frechet_distance
    assert fd["digits-resmlp-l"] < 0.7 * fd["digits-mlp-s"]
