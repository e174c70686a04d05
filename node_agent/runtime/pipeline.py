"""Class-conditional diffusion sampling with ONNX Runtime sessions and the numpy schedulers.

Denoising and decoding are separate calls (:meth:`DiffusionPipeline.denoise_latent`,
:meth:`DiffusionPipeline.decode`) so that a split run can denoise on one node and decode on another;
:meth:`DiffusionPipeline.generate` does both. Same inputs give bit-identical outputs on the same
machine and providers: all randomness comes from ``np.random.default_rng(seed)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort

from node_agent.runtime.errors import Cancelled, InferenceError
from node_agent.runtime.repository import ModelSpec
from node_agent.runtime.schedulers import make_scheduler

StopCheck = Callable[[], "str | None"]


@dataclass
class DenoiseOutput:
    """Result of the denoising loop.

    Attributes:
        samples: Denoised latents (latent models) or unclipped images (pixel models), float32 [B, C, H, W].
        step_times_s: Wall time of each denoising step (model run + scheduler update), seconds.
        denoise_time_s: Wall time of the whole loop, seconds.
        scheduler_overhead_s: Part of ``denoise_time_s`` spent outside ONNX Runtime (guidance
            combination and scheduler update), seconds.
    """

    samples: np.ndarray
    step_times_s: list[float] = field(default_factory=list)
    denoise_time_s: float = 0.0
    scheduler_overhead_s: float = 0.0


@dataclass
class PipelineOutput:
    """Generated images and their timings.

    Attributes:
        images: float32 [B, C, H, W], clipped to the model's value range.
        step_times_s: Wall time of each denoising step, seconds.
        denoise_time_s: Wall time of the denoising loop, seconds.
        decode_time_s: Wall time of decoding (decoder run and clipping), seconds.
        scheduler_overhead_s: Time spent outside ONNX Runtime during denoising, seconds.
    """

    images: np.ndarray
    step_times_s: list[float]
    denoise_time_s: float
    decode_time_s: float
    scheduler_overhead_s: float


def _run(session: ort.InferenceSession, output: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
    try:
        (result,) = session.run([output], feeds)
    except Exception as exc:  # ORT's pybind11 exception classes
        raise InferenceError(f"onnxruntime failed computing {output!r}: {exc}") from exc
    return np.asarray(result, dtype=np.float32)


class DiffusionPipeline:
    """Sampling for one loaded model.

    Args:
        spec: The model.
        sessions: Role (``denoiser``, and ``decoder`` for latent models) -> ONNX Runtime session.
            Sessions are only read from, so one pipeline may serve several threads.
    """

    def __init__(self, spec: ModelSpec, sessions: Mapping[str, ort.InferenceSession]) -> None:
        if "denoiser" not in sessions:
            raise ValueError("a denoiser session is required")
        if spec.kind == "latent" and "decoder" not in sessions:
            raise ValueError("a latent model needs a decoder session")
        self.spec = spec
        self.sessions = dict(sessions)

    def _check_labels(self, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be a non-empty 1-D integer array, got {labels.dtype} {labels.shape}")
        if labels.min() < 0 or labels.max() >= self.spec.num_classes:
            raise ValueError(f"labels must be in 0..{self.spec.num_classes - 1}")
        return labels.astype(np.int64)

    def denoise_latent(
        self,
        labels: np.ndarray,
        steps: int,
        seed: int,
        guidance: float,
        scheduler: str,
        eta: float = 0.0,
        *,
        should_stop: StopCheck | None = None,
    ) -> DenoiseOutput:
        """Run the reverse diffusion from ``N(0, I)`` noise.

        Args:
            labels: int64 [B], class labels in 0..num_classes-1.
            steps: Denoising steps, 1..T.
            seed: Seed of ``np.random.default_rng`` (initial noise and any sampler noise).
            guidance: Classifier-free guidance scale; 1.0 runs the conditional batch only, 0.0 the
                unconditional batch only, anything else both halves as one batch of 2B.
            scheduler: ``ddim`` or ``ddpm``.
            eta: DDIM noise weight in [0, 1] (ignored by DDPM).
            should_stop: Called before each step; a non-empty string stops with ``Cancelled(reason)``.

        Raises:
            ValueError: Arguments out of range.
            Cancelled: ``should_stop`` returned a reason.
            InferenceError: ONNX Runtime failed.
        """
        labels = self._check_labels(labels)
        if not math.isfinite(guidance) or guidance < 0:
            raise ValueError(f"guidance must be finite and >= 0, got {guidance}")
        sampler = make_scheduler(scheduler, self.spec.schedule, eta=eta)
        sampler.set_timesteps(steps)
        rng = np.random.default_rng(seed)
        batch = labels.shape[0]
        x = rng.standard_normal((batch, *self.spec.denoise_shape), dtype=np.float32)
        null = np.full(batch, self.spec.null_label, dtype=np.int64)
        if guidance == 1.0:
            y = labels
        elif guidance == 0.0:
            y = null
        else:
            y = np.concatenate([labels, null])
        denoiser = self.sessions["denoiser"]
        out = DenoiseOutput(samples=x)
        loop_start_s = time.perf_counter()
        for t in sampler.timesteps:
            if should_stop is not None and (reason := should_stop()):
                raise Cancelled(reason)
            step_start_s = time.perf_counter()
            x_in = x if y.shape[0] == batch else np.concatenate([x, x])
            t_in = np.full(y.shape[0], t, dtype=np.int64)
            pred = _run(denoiser, "eps", {"x": x_in, "t": t_in, "y": y})
            if pred.shape != x_in.shape:
                raise InferenceError(f"denoiser returned eps {pred.shape}, expected {x_in.shape}")
            model_done_s = time.perf_counter()
            if y.shape[0] != batch:
                cond, uncond = pred[:batch], pred[batch:]
                pred = uncond + np.float32(guidance) * (cond - uncond)
            x = sampler.step(pred, int(t), x, rng)
            step_end_s = time.perf_counter()
            out.step_times_s.append(step_end_s - step_start_s)
            out.scheduler_overhead_s += step_end_s - model_done_s
        out.denoise_time_s = time.perf_counter() - loop_start_s
        out.samples = x
        return out

    def decode(self, samples: np.ndarray) -> tuple[np.ndarray, float]:
        """Turn denoised samples into images clipped to the value range.

        Latent models divide by ``latent.scale`` and run the decoder; pixel models only clip.

        Args:
            samples: Output of :meth:`denoise_latent`, float32 [B, C, H, W].

        Returns:
            (images float32 [B, C, H, W], decode time in seconds).

        Raises:
            InferenceError: The decoder failed.
        """
        start_s = time.perf_counter()
        samples = np.asarray(samples, dtype=np.float32)
        if self.spec.latent is not None:
            z = samples / np.float32(self.spec.latent.scale)
            images = _run(self.sessions["decoder"], "image", {"z": z})
        else:
            images = samples
        low, high = self.spec.value_range
        images = np.clip(images, np.float32(low), np.float32(high)).astype(np.float32, copy=False)
        return images, time.perf_counter() - start_s

    def generate(
        self,
        labels: np.ndarray,
        steps: int,
        seed: int,
        guidance: float,
        scheduler: str,
        eta: float = 0.0,
        *,
        should_stop: StopCheck | None = None,
    ) -> PipelineOutput:
        """Denoise then decode; arguments as in :meth:`denoise_latent`.

        ``should_stop`` is also checked once more before decoding.
        """
        den = self.denoise_latent(labels, steps, seed, guidance, scheduler, eta, should_stop=should_stop)
        if should_stop is not None and (reason := should_stop()):
            raise Cancelled(reason)
        images, decode_time_s = self.decode(den.samples)
        return PipelineOutput(
            images=images,
            step_times_s=den.step_times_s,
            denoise_time_s=den.denoise_time_s,
            decode_time_s=decode_time_s,
            scheduler_overhead_s=den.scheduler_overhead_s,
        )
