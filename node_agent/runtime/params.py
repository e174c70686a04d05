"""Request parameters, their validation, and the records the engine returns."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from node_agent.runtime.errors import InvalidArgument
from node_agent.runtime.repository import SCHEDULERS, ModelSpec

MAX_GUIDANCE = 100.0
MAX_SEED = 2**64 - 1


@dataclass(frozen=True)
class GenerateParams:
    """One generation request.

    Attributes:
        labels: One class label per image (0..num_classes-1); its length is the batch size.
        steps: Denoising steps, 1..T (the model's ``num_train_timesteps``).
        seed: Seed of the request's random generator, 0..2**64-1.
        guidance: Classifier-free guidance scale, 0..100 (1.0 = conditional only).
        scheduler: ``ddim`` or ``ddpm``.
        eta: DDIM noise weight in [0, 1] (ignored by DDPM).
    """

    labels: tuple[int, ...]
    steps: int
    seed: int
    guidance: float
    scheduler: str
    eta: float = 0.0

    @classmethod
    def with_defaults(
        cls,
        spec: ModelSpec,
        labels: tuple[int, ...],
        seed: int,
        *,
        steps: int | None = None,
        guidance: float | None = None,
        scheduler: str | None = None,
        eta: float = 0.0,
    ) -> GenerateParams:
        """Parameters with the model's ``[defaults]`` filling the ones given as None."""
        return cls(
            labels=tuple(labels),
            steps=spec.default_steps if steps is None else steps,
            seed=seed,
            guidance=spec.default_guidance if guidance is None else guidance,
            scheduler=spec.default_scheduler if scheduler is None else scheduler,
            eta=eta,
        )


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, (float, np.floating))) and math.isfinite(float(value))


def validate_params(spec: ModelSpec, params: GenerateParams, max_batch: int | None = None) -> None:
    """Check a request against a model.

    Args:
        spec: The model.
        params: The request.
        max_batch: Extra cap on the batch size (the engine's), on top of ``spec.max_batch``.

    Raises:
        InvalidArgument: The first offending field (``batch``, ``labels``, ``steps``, ``seed``,
            ``guidance``, ``scheduler`` or ``eta``), with a message saying what is allowed.
    """
    limit = spec.max_batch if max_batch is None else min(spec.max_batch, max_batch)
    labels = params.labels
    if not isinstance(labels, (tuple, list)) or len(labels) == 0:
        raise InvalidArgument("batch", "at least one label (one image) is needed")
    if len(labels) > limit:
        raise InvalidArgument("batch", f"{len(labels)} images requested, at most {limit} per request")
    for index, label in enumerate(labels):
        if not _is_int(label) or not 0 <= label < spec.num_classes:
            raise InvalidArgument(
                "labels", f"labels[{index}] = {label!r}: must be an integer in 0..{spec.num_classes - 1}"
            )
    max_steps = spec.schedule.num_train_timesteps
    if not _is_int(params.steps) or not 1 <= params.steps <= max_steps:
        raise InvalidArgument("steps", f"{params.steps!r}: must be an integer in 1..{max_steps}")
    if not _is_int(params.seed) or not 0 <= params.seed <= MAX_SEED:
        raise InvalidArgument("seed", f"{params.seed!r}: must be an integer in 0..2**64-1")
    if not _is_number(params.guidance) or not 0.0 <= params.guidance <= MAX_GUIDANCE:
        raise InvalidArgument("guidance", f"{params.guidance!r}: must be a finite number in 0..{MAX_GUIDANCE}")
    if params.scheduler not in SCHEDULERS:
        raise InvalidArgument("scheduler", f"{params.scheduler!r}: must be one of {', '.join(SCHEDULERS)}")
    if not _is_number(params.eta) or not 0.0 <= params.eta <= 1.0:
        raise InvalidArgument("eta", f"{params.eta!r}: must be a finite number in [0, 1]")


@dataclass(frozen=True)
class LoadReport:
    """Measured cost of loading one model.

    Attributes:
        name: Model name.
        load_time_s: Wall time to create (and warm up) the sessions, seconds.
        mem_delta_bytes: Process RSS after minus before loading (psutil); noisy when other models
            are computing at the same time, and may be negative.
        providers: Execution providers the denoiser session actually uses, best first.
        loaded_monotonic_s: ``time.monotonic()`` when loading finished.
    """

    name: str
    load_time_s: float
    mem_delta_bytes: int
    providers: list[str]
    loaded_monotonic_s: float


@dataclass(frozen=True)
class LoadedInfo:
    """State of one loaded model.

    Attributes:
        report: Its load report.
        spec: Its spec.
        queue_depth: Requests waiting (not counting the running one).
        queue_capacity: Most requests that may wait.
        requests_served: Requests that completed successfully.
        requests_failed: Requests that ended with an error (incl. deadline and cancellation).
        busy: Whether a request is being computed now.
    """

    report: LoadReport
    spec: ModelSpec
    queue_depth: int
    queue_capacity: int
    requests_served: int
    requests_failed: int
    busy: bool


@dataclass
class GenerateResult:
    """A completed request.

    Attributes:
        model: Model name.
        images: float32 [B, C, H, W], clipped to the model's value range.
        queue_time_s: From ``submit`` to the start of computing, seconds.
        compute_time_s: From the start to the end of computing (denoise + decode), seconds.
        step_times_s: Wall time of each denoising step, seconds.
        denoise_time_s: Wall time of the denoising loop, seconds.
        decode_time_s: Wall time of decoding, seconds.
        scheduler_overhead_s: Denoising-loop time outside the denoiser's ``session.run`` calls (input
            preparation, guidance, scheduler steps, bookkeeping, per-run set-up), seconds.
        started_monotonic_s: ``time.monotonic()`` when computing started.
        finished_monotonic_s: ``time.monotonic()`` when computing finished.
        steps: Denoising steps run.
        scheduler: Sampler used.
        guidance: Guidance scale used.
        seed: Seed used.
        eta: DDIM eta used.
        instrument_result: What the submit's ``instrument.end()`` returned (None without one).
    """

    model: str
    images: np.ndarray
    queue_time_s: float
    compute_time_s: float
    step_times_s: list[float]
    denoise_time_s: float
    decode_time_s: float
    scheduler_overhead_s: float
    started_monotonic_s: float
    finished_monotonic_s: float
    steps: int
    scheduler: str
    guidance: float
    seed: int
    eta: float
    instrument_result: Any = None
