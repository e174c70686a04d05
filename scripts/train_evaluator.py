"""Train the digit evaluator (classifier + Fréchet features) and write ``profiles/evaluator/digits/``.

Used by ``train_models.py``; the folder it writes is read by ``profiles/quality.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from digits_models import DigitClassifier, param_count
from model_export import export_onnx, write_toml
from torch import nn
from training_loop import fit

from profiles.quality import Evaluator, feature_stats

FEATURES = 32
"""Size F of the evaluator's feature layer."""


def shift_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shift each image [B, 1, 8, 8] by -1..1 pixels in x and y, filling with background (-1)."""
    b = len(x)
    padded = nn.functional.pad(x, (1, 1, 1, 1), value=-1.0)[:, 0]
    dy, dx = torch.randint(0, 3, (2, b), generator=gen)
    rows = dy[:, None] + torch.arange(8)
    cols = dx[:, None] + torch.arange(8)
    return padded[torch.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]][:, None]


def train_classifier(x: torch.Tensor, y: torch.Tensor, steps: int, seed: int) -> DigitClassifier:
    """Train the evaluator on ``x`` [N, 1, 8, 8] in [-1, 1] with labels ``y`` [N].

    Batches of 128 with random 1-pixel shifts and light pixel noise; returns the EMA weights.
    """
    torch.manual_seed(seed)
    model = DigitClassifier(FEATURES)

    def loss_fn(m: nn.Module, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(0, len(x), (128,), generator=gen)
        batch = shift_augment(x[idx], gen) + 0.05 * torch.randn((128, 1, 8, 8), generator=gen)
        logits, _ = m(batch)
        return nn.functional.cross_entropy(logits, y[idx], label_smoothing=0.05)

    return fit(model, loss_fn, steps, 2e-3, 0.995, seed, "evaluator")


def write_evaluator(
    folder: Path,
    clf: DigitClassifier,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    steps: int,
    seconds: float,
    dataset: str,
) -> None:
    """Export the evaluator and its reference statistics of the held-out digits.

    Writes ``evaluator.onnx``, ``reference.npz`` (``images``, ``labels``, ``mu``, ``sigma``, the last
    two from the ONNX features, so exactly what ``profiles/quality.py`` computes) and ``evaluator.toml``.

    Args:
        folder: Output folder (created).
        clf: Trained classifier.
        x_test: Held-out images float32 [N, 1, 8, 8] in [-1, 1].
        y_test: Their labels int64 [N].
        steps: Optimizer steps the classifier was trained for.
        seconds: Training wall-clock time, in seconds.
        dataset: Provenance line for the training data.
    """
    onnx_path = folder / "evaluator.onnx"
    export_onnx(clf, (x_test[:3],), onnx_path, ("image",), ("logits", "features"))
    images, labels = x_test.numpy().astype(np.float32), y_test.numpy().astype(np.int64)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits, feats = session.run(["logits", "features"], {"image": images})
    mu, sigma = feature_stats(feats)
    np.savez_compressed(folder / "reference.npz", images=images, labels=labels, mu=mu, sigma=sigma)
    accuracy = float((logits.argmax(axis=1) == labels).mean())
    floor = Evaluator.from_dir(folder).real_floor()
    write_toml(
        folder / "evaluator.toml",
        {
            "name": "digits",
            "description": "Conv classifier scoring generated 8x8 digits (accuracy, Frechet distance).",
        },
        {
            "evaluator": {
                "features": FEATURES,
                "heldout_images": len(labels),
                "heldout_accuracy": round(accuracy, 4),
                "half_split_accuracy": round(floor.accuracy, 4),
                "half_split_frechet_distance": round(floor.frechet_distance, 4),
            },
            "training": {
                "arch": "conv3-fc",
                "params": param_count(clf),
                "dataset": dataset,
                "augmentation": "random 1-pixel shifts, gaussian pixel noise std 0.05, label smoothing 0.05",
                "optimizer_steps": steps,
                "train_time_s": round(seconds, 1),
                "torch": torch.__version__,
            },
        },
    )
    print(f"evaluator: held-out accuracy {accuracy:.4f}, half-split FD {floor.frechet_distance:.3f}")
