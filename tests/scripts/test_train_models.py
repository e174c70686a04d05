"""Tests of scripts/train_models.py: the training schedule, data split, and a --quick end-to-end run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from digits_models import load_torch_denoiser  # noqa: E402
from train_evaluator import shift_augment  # noqa: E402
from train_models import alphas_cumprod, load_split  # noqa: E402

from profiles.quality import Evaluator  # noqa: E402


def test_schedule_matches_diffusers() -> None:
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02)
    np.testing.assert_allclose(alphas_cumprod().numpy(), ref.alphas_cumprod.numpy(), rtol=1e-6)


def test_split_is_fixed_stratified_and_scaled() -> None:
    xtr, _, xte, yte = load_split()
    assert (len(xtr), len(xte)) == (1437, 360)
    assert xtr.dtype == torch.float32 and xtr.shape[1:] == (1, 8, 8)
    assert float(xtr.min()) == -1.0 and float(xtr.max()) == 1.0
    assert np.bincount(yte.numpy()).min() >= 35  # every class held out in proportion
    xtr2, *_ = load_split()
    assert torch.equal(xtr, xtr2)
    # No held-out image is in the train split.
    train_rows = {row.tobytes() for row in xtr.numpy()}
    assert sum(row.tobytes() in train_rows for row in xte.numpy()) < 5  # (load_digits has a few duplicates)


def test_shift_augment_moves_pixels_by_at_most_one() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.full((64, 1, 8, 8), -1.0)
    x[:, 0, 3, 4] = 1.0
    shifted = shift_augment(x, gen)
    rows, cols = torch.nonzero(shifted[:, 0] == 1.0, as_tuple=True)[1:]
    assert len(rows) == 64  # the bright pixel is never lost
    assert set(rows.tolist()) == {2, 3, 4} and set(cols.tolist()) == {3, 4, 5}


@pytest.mark.slow
def test_quick_training_writes_loadable_repository(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_models.py"), "--out", str(tmp_path), "--quick"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("digits-mlp-s", "digits-resmlp-l", "digits-ldm"):
        folder = tmp_path / "models" / name
        with open(folder / "model.toml", "rb") as f:
            spec = tomllib.load(f)
        assert spec["name"] == name
        for rel in spec["files"].values():
            ort.InferenceSession(str(folder / rel), providers=["CPUExecutionProvider"])
        module = load_torch_denoiser(folder)
        sec = spec["latent"] if spec["kind"] == "latent" else spec["image"]
        x = torch.randn(2, sec["channels"], sec["height"], sec["width"])
        t, y = torch.tensor([10, 900]), torch.tensor([2, 10])
        sess = ort.InferenceSession(str(folder / "denoiser.onnx"), providers=["CPUExecutionProvider"])
        (expected,) = sess.run(None, {"x": x.numpy(), "t": t.numpy(), "y": y.numpy()})
        with torch.no_grad():
            np.testing.assert_allclose(module(x, t, y).numpy(), expected, atol=1e-5)
    evaluator = Evaluator.from_dir(tmp_path / "evaluator" / "digits")
    score = evaluator.score(evaluator.images, evaluator.labels)
    assert score.n == 360 and score.accuracy > 0.2  # a few dozen steps already beat chance
    with open(tmp_path / "evaluator" / "digits" / "evaluator.toml", "rb") as f:
        assert tomllib.load(f)["evaluator"]["heldout_images"] == 360
