"""Utility of one served request: quality − w_latency·latency − w_energy·energy.

Quality (``utility.quality = "class-probability"`` in a scenario) is the evaluator's softmax
probability of the requested class for the one generated image, in [0, 1]: computable per request,
unlike the Fréchet distance, which needs a batch. :func:`class_probabilities` turns the evaluator's
logits (``profiles.quality.Evaluator.run``) into probabilities, :func:`per_image_quality` picks the
requested class.

Energy may be unavailable (a VM without RAPL reports it as such). Then the energy term is *omitted*,
never taken as 0 J: the result says so in ``energy_available = False`` and ``energy_term = None``,
and reports must count such requests apart (their values are not comparable with measured ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_WEIGHT = 1e6
"""the largest utility weight (per s of latency, per J of energy) a config or a request may set"""


@dataclass(frozen=True)
class UtilityResult:
    """The utility of one request and its parts.

    Attributes:
        value: quality − latency_term − energy_term (energy_term left out when unavailable).
        quality: per-image quality in [0, 1].
        latency_term: w_latency · latency_s (utility units).
        energy_term: w_energy · energy_j, or None when energy was unavailable.
        energy_available: False when the energy term was omitted because energy was not measured.
        floor_met: quality >= the user's quality floor; None when the user has none.
    """

    value: float
    quality: float
    latency_term: float
    energy_term: float | None
    energy_available: bool
    floor_met: bool | None


def _finite(name: str, value: float, low: float, high: float = math.inf) -> float:
    value = float(value)
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name}: must be finite and in [{low:g}, {high:g}] (got {value!r})")
    return value


def request_utility(
    quality: float,
    latency_s: float,
    energy_j: float | None,
    w_latency: float,
    w_energy: float,
    quality_floor: float | None = None,
) -> UtilityResult:
    """Utility of one request.

    Args:
        quality: per-image quality in [0, 1] (see :func:`per_image_quality`).
        latency_s: end-to-end latency, s (>= 0).
        energy_j: energy spent on the request, J (>= 0); None when unavailable: the energy term is
            then omitted and the result flagged ``energy_available = False``.
        w_latency: latency weight, per s (>= 0).
        w_energy: energy weight, per J (>= 0).
        quality_floor: the user's least acceptable quality in [0, 1], or None.

    Returns:
        The value and its parts.

    Raises:
        ValueError: an argument is NaN, infinite or out of range (the message names it).
    """
    quality = _finite("quality", quality, 0.0, 1.0)
    latency_term = _finite("w_latency", w_latency, 0.0) * _finite("latency_s", latency_s, 0.0)
    w_energy = _finite("w_energy", w_energy, 0.0)
    energy_term = None if energy_j is None else w_energy * _finite("energy_j", energy_j, 0.0)
    floor_met = None if quality_floor is None else quality >= _finite("quality_floor", quality_floor, 0.0, 1.0)
    value = quality - latency_term - (energy_term if energy_term is not None else 0.0)
    return UtilityResult(value, quality, latency_term, energy_term, energy_term is not None, floor_met)


def class_probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (numerically stable), float64, same shape as ``logits``."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 0 or z.shape[-1] < 1 or not np.isfinite(z).all():
        raise ValueError(f"logits must be finite with a class axis, got shape {z.shape}")
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def per_image_quality(probabilities: np.ndarray, label: int | np.ndarray) -> float | np.ndarray:
    """Probability of the requested class: the quality of one image (or of each image of a batch).

    Args:
        probabilities: class probabilities, [C] for one image or [B, C] for a batch; each row
            non-negative and summing to 1 (within 1e-4); see :func:`class_probabilities`.
        label: the requested class, an int for [C], or ints [B] for [B, C].

    Returns:
        A float in [0, 1] for one image, float64 [B] for a batch.

    Raises:
        ValueError: shapes disagree, a row is not a distribution, or a label is out of range.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim not in (1, 2) or p.shape[-1] < 1:
        raise ValueError(f"probabilities must be [C] or [B, C], got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or not np.allclose(p.sum(axis=-1), 1.0, atol=1e-4):
        raise ValueError("probabilities: each row must be non-negative and sum to 1 (pass softmax(logits))")
    labels = np.asarray(label)
    if labels.dtype.kind not in "iu" or labels.shape != p.shape[:-1]:
        raise ValueError(f"label must be integer(s) of shape {p.shape[:-1]}, got {labels.shape} {labels.dtype}")
    if (labels < 0).any() or (labels >= p.shape[-1]).any():
        raise ValueError(f"label must be in 0..{p.shape[-1] - 1}")
    if p.ndim == 1:
        return float(np.clip(p[int(labels)], 0.0, 1.0))
    return np.clip(p[np.arange(len(p)), labels], 0.0, 1.0)
