"""Quality of generated 8x8 digits: evaluator accuracy and Fréchet distance of evaluator features.

The evaluator (``profiles/evaluator/digits/``) is a small digit classifier exported to ONNX. A batch
of generated images is scored by

* accuracy: the fraction the evaluator classifies as the label they were generated for, and
* Fréchet distance (FD, as in FID): the distance between Gaussians fitted to the evaluator's
  penultimate-layer features of the generated images and of the held-out real digits.

Both agent and orchestrator import this module, so it depends on numpy and onnxruntime only.
FD is biased upwards for small samples; compare scores of equal ``n``, and read them against
:meth:`Evaluator.real_floor`, the FD between two halves of the real held-out set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

IMAGE_SHAPE = (1, 8, 8)


@dataclass(frozen=True)
class QualityScore:
    """Quality of one set of images.

    Attributes:
        accuracy: Fraction of images the evaluator assigns to their label (0..1, higher is better).
        frechet_distance: FD between the images' features and the reference features, in squared
            feature units (>= 0, lower is better).
        n: Number of images scored.
    """

    accuracy: float
    frechet_distance: float
    n: int


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [F] and unbiased covariance [F, F] (float64) of ``features`` [N, F], N >= 2."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"features must be [N, F] with N >= 2, got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (tiny negative eigenvalues -> 0)."""
    vals, vecs = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``|mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))``, where the last trace is
    computed as the sum of square roots of the eigenvalues of the symmetric PSD matrix
    ``sigma1^(1/2) sigma2 sigma1^(1/2)``; it stays real and finite for singular covariances.

    Args:
        mu1: Mean [F].
        sigma1: Covariance [F, F].
        mu2: Mean [F].
        sigma2: Covariance [F, F].

    Returns:
        The distance, in squared feature units (>= 0).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != mu1.shape * 2:
        raise ValueError(f"shape mismatch: mu {mu1.shape}/{mu2.shape}, sigma {s1.shape}/{s2.shape}")
    root1 = _sqrt_psd(s1)
    middle = root1 @ s2 @ root1
    tr_covmean = float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None)).sum())
    diff = mu1 - mu2
    return max(float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean), 0.0)


class Evaluator:
    """Scores generated digits against the held-out real digits.

    Args:
        session: ONNX Runtime session of ``evaluator.onnx`` (input ``image`` [B, 1, 8, 8] in [-1, 1];
            outputs ``logits`` [B, 10] and ``features`` [B, F]).
        images: Held-out real images float32 [N, 1, 8, 8] in [-1, 1].
        labels: Their labels int64 [N].
        mu: Mean of their features [F].
        sigma: Covariance of their features [F, F].
        batch_size: Images per evaluator run.
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        images: np.ndarray,
        labels: np.ndarray,
        mu: np.ndarray,
        sigma: np.ndarray,
        batch_size: int = 500,
    ) -> None:
        self.session = session
        self.images = np.asarray(images, np.float32)
        self.labels = np.asarray(labels, np.int64)
        self.mu = np.asarray(mu, np.float64)
        self.sigma = np.asarray(sigma, np.float64)
        self.batch_size = batch_size

    @classmethod
    def from_dir(cls, path: Path | str, threads: int = 0) -> Evaluator:
        """Load ``evaluator.onnx`` and ``reference.npz`` from ``path``.

        Args:
            path: The evaluator folder (e.g. ``profiles/evaluator/digits``).
            threads: ONNX Runtime intra-op threads (0: its default).
        """
        path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(
            str(path / "evaluator.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
        )
        with np.load(path / "reference.npz") as ref:
            return cls(session, ref["images"], ref["labels"], ref["mu"], ref["sigma"])

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Evaluator outputs for ``images`` [B, 1, 8, 8] (clipped to [-1, 1] first, as the agent does).

        Returns:
            (logits float32 [B, 10], features float32 [B, F]).
        """
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"images must be [B, 1, 8, 8], got shape {images.shape}")
        if not np.isfinite(images).all():
            raise ValueError("images contain NaN or infinite values")
        images = np.clip(images, -1.0, 1.0)
        logits, feats = [], []
        for i in range(0, len(images), self.batch_size):
            lg, ft = self.session.run(["logits", "features"], {"image": images[i : i + self.batch_size]})
            logits.append(lg)
            feats.append(ft)
        return np.concatenate(logits), np.concatenate(feats)

    def score(self, images: np.ndarray, labels: np.ndarray) -> QualityScore:
        """Score ``images`` [B, 1, 8, 8] generated for ``labels`` [B] (B >= 2) against the reference."""
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(images):
            raise ValueError(f"got {len(images)} images but {len(labels)} labels")
        logits, feats = self.run(images)
        mu, sigma = feature_stats(feats)
        accuracy = float((logits.argmax(axis=1) == labels).mean())
        return QualityScore(accuracy, frechet_distance(mu, sigma, self.mu, self.sigma), len(labels))

    def real_floor(self) -> QualityScore:
        """What "good" is: one half of the held-out real digits scored against the other half.

        The halves are stratified (alternate images of each class). FD is biased upwards at small n,
        so this floor (n = N/2) is what a perfect generator would score at about that sample size.
        """
        order = np.argsort(self.labels, kind="stable")
        half_a, half_b = order[0::2], order[1::2]
        logits, feats = self.run(self.images)
        mu_b, sigma_b = feature_stats(feats[half_b])
        mu_a, sigma_a = feature_stats(feats[half_a])
        accuracy = float((logits[half_a].argmax(axis=1) == self.labels[half_a]).mean())
        return QualityScore(accuracy, frechet_distance(mu_a, sigma_a, mu_b, sigma_b), len(half_a))
