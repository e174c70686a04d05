"""Class-conditional diffusion sampling with ONNX Runtime sessions and the numpy schedulers.

The work between denoiser calls (guidance, scheduler step, next inputs) is in
:mod:`node_agent.runtime.denoise_steps`; this module runs the loop and times it. Denoising and
decoding are separate calls (:meth:`DiffusionPipeline.denoise_latent`,
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

from node_agent.runtime.denoise_steps import StepPlanner
from node_agent.runtime.errors import Cancelled, InferenceError
from node_agent.runtime.repository import ModelSpec

StopCheck = Callable[[], "str | None"]
_DENOISER_OUTPUTS = ["eps"]


@dataclass
class DenoiseOutput:
    """Result of the denoising loop.

    Attributes:
        samples: Denoised latents (latent models) or unclipped images (pixel models), float32 [B, C, H, W].
        step_times_s: Wall time of each denoising step (stop check, model run, guidance, scheduler
            update and the next step's inputs), seconds.
        denoise_time_s: Wall time of the whole loop including its set-up (scheduler or cached
            per-step coefficients, buffers) and the copy of the result, seconds.
        scheduler_overhead_s: Part of ``denoise_time_s`` spent outside the denoiser's
            ``session.run`` call: set-up, input preparation, guidance, scheduler update and
            bookkeeping, seconds.
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
        scheduler_overhead_s: Part of ``denoise_time_s`` spent outside the denoiser's ``session.run``
            calls, seconds.
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
        self._planner = StepPlanner(spec.schedule, spec.null_label)

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
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((labels.shape[0], *self.spec.denoise_shape), dtype=np.float32)
        start_s = time.perf_counter()  # the set-up counts as overhead: it is the steps' work done early
        sampling = self._planner.start(scheduler, eta, steps, x, labels, guidance, rng)
        # locals, not attribute lookups, in the loop: it has a few microseconds per step
        feeds, step, ops, input_shape = sampling.start(), sampling.step, sampling.ops, sampling.input_shape
        run, outputs, clock = self.sessions["denoiser"].run, _DENOISER_OUTPUTS, time.perf_counter
        step_times_s: list[float] = []
        add_step_time = step_times_s.append
        run_time_s = 0.0
        step_start_s = clock()
        for i in range(sampling.num_steps):
            if should_stop is not None and (reason := should_stop()):
                raise Cancelled(reason)
            run_start_s = clock()
            try:
                (pred,) = run(outputs, feeds)
            except Exception as exc:  # ORT's pybind11 exception classes
                raise InferenceError(f"onnxruntime failed computing 'eps': {exc}") from exc
            run_end_s = clock()
            if ops is not None and getattr(pred, "shape", None) == input_shape:
                # AffineSteps.step inlined: the call alone costs ~0.3% of a small model's step
                output_rows, weighted_sum, operands, next_x, feeds = ops[i]
                output_rows[...] = pred
                weighted_sum(operands, next_x)
            else:
                feeds = step(i, pred)
            step_end_s = clock()
            run_time_s += run_end_s - run_start_s
            add_step_time(step_end_s - step_start_s)
            step_start_s = step_end_s
        samples = sampling.finish()
        denoise_time_s = clock() - start_s
        return DenoiseOutput(samples, step_times_s, denoise_time_s, max(denoise_time_s - run_time_s, 0.0))

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
