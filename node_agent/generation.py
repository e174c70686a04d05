"""The agent's own request and result types, independent of the wire format (EdgeAgent or KServe)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GenerationRequest:
    """A generation request as decoded from either API, before the model's defaults are applied.

    Attributes:
        model: model name in the repository.
        labels: one class label per image (the batch).
        steps: denoising steps, None for the model's default.
        seed: initial-noise seed.
        guidance: classifier-free guidance scale, None for the model's default.
        scheduler: "ddim" or "ddpm", None for the model's default.
        eta: DDIM eta in [0, 1].
        request_id: the caller's id; empty lets the agent make one.
        timeout_s: a time limit carried in the request body (KServe "timeout"), None if absent.
    """

    model: str
    labels: tuple[int, ...]
    steps: int | None = None
    seed: int = 0
    guidance: float | None = None
    scheduler: str | None = None
    eta: float = 0.0
    request_id: str = ""
    timeout_s: float | None = None


@dataclass(frozen=True)
class MeasuredGeneration:
    """One finished generation with everything the agent measured for it.

    Attributes:
        model: model name.
        request_id: the caller's id, or one the agent made.
        agent: the agent's name.
        images: float32 [B, C, H, W] in the model's value range.
        steps: denoising steps run.
        scheduler: "ddim" or "ddpm".
        guidance: classifier-free guidance scale used.
        seed: initial-noise seed.
        queue_time_s: submit to start of compute.
        compute_time_s: denoising plus decoding.
        step_times_s: wall time of each denoising step.
        decode_time_s: decoder time (latent models), else 0.
        total_time_s: receipt of the request to the result, on the agent.
        energy_j: device energy over the compute window, None when no source exists.
        energy_source: telemetry source label of ``energy_j`` ("unavailable" when None).
        energy_method: "counter", "integrated" or "unavailable".
        peak_mem_bytes: peak memory seen over the compute window.
        peak_mem_source: source label of ``peak_mem_bytes``.
        emulated_delay_s: the emulated WAN delay this response was held back by (already inside
            ``total_time_s``); 0 when the agent emulates none. Not a measurement.
        emulated_delay_model: label of the delay's emulation model, "" when none.
    """

    model: str
    request_id: str
    agent: str
    images: np.ndarray
    steps: int
    scheduler: str
    guidance: float
    seed: int
    queue_time_s: float
    compute_time_s: float
    step_times_s: tuple[float, ...]
    decode_time_s: float
    total_time_s: float
    energy_j: float | None
    energy_source: str
    energy_method: str
    peak_mem_bytes: int
    peak_mem_source: str
    emulated_delay_s: float = 0.0
    emulated_delay_model: str = ""
