"""``edgetb profile``: sweep one model on a live agent over steps and batch sizes, fit, write the profile.

For each (steps, batch) point the profiler issues single-stream Generate requests in windows of
``window_requests`` until the harness's validity rule holds (the last 3 windows agree within 10 %
in throughput and p50 latency, :mod:`orchestrator.harness.validity`) and the minimum request count
is met, or a cap (requests or seconds) is hit — then the point is kept with ``valid = false`` and
the reason. Every request's client-side latency, the agent's compute time, energy (when the agent
has an energy source) and peak memory are recorded. At batch-1 points, ``quality_per_class``
images per class are generated (large batches, separate seeds) and scored by the evaluator:
accuracy, mean/std per-image class probability (the utility's quality) and Fréchet distance vs
the held-out real digits. Loading is measured over ``load_repeats`` unload/load cycles.

The fits (:mod:`profiles.fit`) are written with the points into a
:class:`profiles.profile.ModelProfile` file with its provenance.
"""

from __future__ import annotations

import datetime as dt
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import grpc
import numpy as np

from orchestrator.client import AgentClient
from orchestrator.harness.validity import STABLE_WINDOWS, TOLERANCE, check_stability, make_windows
from orchestrator.utility import class_probabilities, per_image_quality
from profiles.profile import ModelProfile
from profiles.quality import Evaluator

DEFAULT_STEPS = (1, 2, 4, 8, 16, 32, 64, 128)
DEFAULT_EVALUATOR = Path(__file__).resolve().parent.parent / "profiles" / "evaluator" / "digits"
#: Images per Generate call when producing quality images.
QUALITY_BATCH = 50
#: Seeds of quality requests start here (timing requests use seeds from 0).
QUALITY_SEED_OFFSET = 1_000_000


@dataclass(frozen=True)
class SweepConfig:
    """How the sweep runs.

    Attributes:
        steps: denoising step counts to measure.
        batches: batch sizes to measure (latency and energy); quality is measured at batch 1.
        window_requests: requests per validity window.
        min_requests: fewest requests per point.
        max_requests: most requests per point (hit: the point is kept as not valid).
        max_point_s: most seconds per point (hit: likewise).
        quality_per_class: images per class scored at each batch-1 point (0: no quality).
        classes: number of classes (labels 0..classes-1).
        load_repeats: unload/load cycles measured.
        seed: first request seed.
        timeout_s: per-call gRPC timeout, s.
    """

    steps: tuple[int, ...] = DEFAULT_STEPS
    batches: tuple[int, ...] = (1,)
    window_requests: int = 10
    min_requests: int = 30
    max_requests: int = 300
    max_point_s: float = 60.0
    quality_per_class: int = 50
    classes: int = 10
    load_repeats: int = 3
    seed: int = 0
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if not self.steps or min(self.steps) < 1 or len(set(self.steps)) != len(self.steps):
            raise ValueError(f"steps: need distinct values >= 1, got {self.steps}")
        if len(self.steps) < 3:
            raise ValueError("steps: need at least 3 step counts to fit the curves")
        if not self.batches or min(self.batches) < 1 or 1 not in self.batches:
            raise ValueError(f"batches: need values >= 1 including 1, got {self.batches}")
        if self.window_requests < 3 or self.min_requests < 1 or self.max_requests < self.min_requests:
            raise ValueError("window_requests >= 3 and 1 <= min_requests <= max_requests are needed")
        if self.quality_per_class and self.quality_per_class * self.classes < 2:
            raise ValueError("quality_per_class: too few images for a Fréchet distance")


@dataclass(frozen=True)
class PointRun:
    """The raw samples of one point."""

    latency_s: list[float]
    compute_s: list[float]
    energy_j: list[float | None]
    energy_source: str
    peak_mem_bytes: int
    valid: bool
    reason: str


def measure_point(client: AgentClient, model: str, steps: int, batch: int, cfg: SweepConfig, seed: int) -> PointRun:
    """Single-stream requests until the validity rule holds or a cap is hit."""
    latency, compute, energy, done = [], [], [], []
    peak, source = 0, "unavailable"
    t0 = time.perf_counter()
    reason = ""
    while True:
        for _ in range(cfg.window_requests):
            labels = [(seed + i) % cfg.classes for i in range(batch)]
            start = time.perf_counter()
            gen = client.generate(model, labels, steps=steps, seed=seed)
            end = time.perf_counter()
            seed += 1
            latency.append(end - start)
            done.append(end - t0)
            compute.append(gen.compute_time_s)
            ok_energy = gen.energy_j is not None and math.isfinite(gen.energy_j)
            energy.append(gen.energy_j if ok_energy else None)
            source = gen.energy_source
            peak = max(peak, gen.peak_mem_bytes)
        count = len(latency) // cfg.window_requests
        stability = check_stability(make_windows(done, latency, count))
        elapsed = time.perf_counter() - t0
        if stability.stable and len(latency) >= cfg.min_requests:
            return PointRun(latency, compute, energy, source, peak, True, stability.reason)
        if len(latency) >= cfg.max_requests or elapsed >= cfg.max_point_s:
            reason = f"cap hit after {len(latency)} requests / {elapsed:.1f} s: {stability.reason}"
            return PointRun(latency, compute, energy, source, peak, False, reason)


def measure_quality(
    client: AgentClient, evaluator: Evaluator, model: str, steps: int, cfg: SweepConfig
) -> dict[str, float | int]:
    """Generate ``quality_per_class`` images per class at ``steps`` and score them."""
    labels = np.repeat(np.arange(cfg.classes), cfg.quality_per_class)
    images = []
    for i in range(0, len(labels), QUALITY_BATCH):
        part = labels[i : i + QUALITY_BATCH].tolist()
        gen = client.generate(model, part, steps=steps, seed=cfg.seed + QUALITY_SEED_OFFSET + i)
        images.append(gen.images)
    imgs = np.concatenate(images)
    score = evaluator.score(imgs, labels)
    logits, _ = evaluator.run(imgs)
    probs = np.asarray(per_image_quality(class_probabilities(logits), labels), dtype=np.float64)
    return {
        "quality_images": len(labels),
        "accuracy": score.accuracy,
        "class_prob": float(probs.mean()),
        "class_prob_std": float(probs.std(ddof=1)),
        "fd": score.frechet_distance,
    }


def measure_load(client: AgentClient, model: str, repeats: int) -> dict[str, float | int]:
    """Unload (if loaded), then ``repeats`` load/unload cycles; the model is left loaded."""
    times, mems = [], []
    for _ in range(repeats):
        try:
            client.unload(model)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:  # not loaded: fine
                raise
        loaded = client.load(model)
        times.append(loaded.load_time_s)
        mems.append(max(loaded.mem_delta_bytes, 0))
    file_bytes = next((m.file_bytes for m in client.models() if m.name == model), 0)
    return {
        "load_time_s": float(np.mean(times)),
        "load_time_s_std": float(np.std(times, ddof=1)) if len(times) > 1 else 0.0,
        "mem_bytes": int(np.mean(mems)),
        "file_bytes": int(file_bytes),
        "repeats": repeats,
    }


def _std(values: Sequence[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _software() -> dict[str, str]:
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("edgetb", "numpy", "onnxruntime", "grpcio"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def run_profile(
    target: str,
    model: str,
    device: str,
    cfg: SweepConfig = SweepConfig(),
    *,
    evaluator_dir: Path = DEFAULT_EVALUATOR,
    command: str = "",
    progress: Callable[[str], None] = lambda _: None,
) -> ModelProfile:
    """Sweep ``model`` on the agent at ``target`` and return its profile (not yet written).

    Args:
        target: the agent, ``HOST:PORT``.
        model: a model in the agent's repository.
        device: the device profile name the agent runs on (``profiles/devices/<device>.toml``).
        cfg: the sweep settings.
        evaluator_dir: the quality evaluator.
        command: the command line, for the provenance.
        progress: receives one line per point.
    """
    evaluator = Evaluator.from_dir(evaluator_dir) if cfg.quality_per_class else None
    with AgentClient(target, timeout_s=cfg.timeout_s) as client:
        client.wait_ready(min(cfg.timeout_s, 30.0))
        info = client.info()
        if model not in {m.name for m in client.models()}:
            raise ValueError(f"model: '{model}' is not in the repository of the agent at {target}")
        load = measure_load(client, model, cfg.load_repeats)
        loaded = client.load(model)
        progress(f"load: {load['load_time_s'] * 1e3:.1f} ms, {load['mem_bytes'] / 1e6:.1f} MB")
        points: list[dict[str, object]] = []
        seed = cfg.seed
        for batch in cfg.batches:
            for steps in cfg.steps:
                client.generate(model, [0] * batch, steps=steps, seed=seed)  # warm-up, not counted
                run = measure_point(client, model, steps, batch, cfg, seed)
                seed += len(run.latency_s) + 1
                energies = [e for e in run.energy_j if e is not None]
                full_energy = len(energies) == len(run.energy_j)
                point: dict[str, object] = {
                    "steps": steps, "batch": batch, "requests": len(run.latency_s), "valid": run.valid,
                    "reason": run.reason, "latency_s": float(np.mean(run.latency_s)),
                    "latency_s_std": _std(run.latency_s), "latency_s_p50": float(np.percentile(run.latency_s, 50)),
                    "latency_s_p99": float(np.percentile(run.latency_s, 99)),
                    "compute_s": float(np.mean(run.compute_s)), "compute_s_std": _std(run.compute_s),
                    "energy_j": float(np.mean(energies)) if full_energy else None,
                    "energy_j_std": _std(energies) if full_energy else None,
                    "energy_source": run.energy_source if full_energy else "unavailable",
                    "peak_mem_bytes": run.peak_mem_bytes,
                }  # fmt: skip
                if batch == 1 and evaluator is not None:
                    point.update(measure_quality(client, evaluator, model, steps, cfg))
                points.append(point)
                quality = f", class_prob {point['class_prob']:.3f}, FD {point['fd']:.2f}" if "fd" in point else ""
                progress(
                    f"steps {steps:>4} batch {batch:>3}: {point['latency_s'] * 1e3:8.2f} ms over "
                    f"{point['requests']} requests ({'valid' if run.valid else 'NOT valid'}){quality}"
                )
    sources = {metric: label for metric, (label, _) in info.sources.items()}
    provenance = {
        "method": "measured", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": cfg.seed, "command": command, "agent": info.name, "hostname": info.hostname,
        "device_kind": info.device_kind, "device_name": info.device_name,
        "execution_providers": list(loaded.providers), "agent_version": info.version,
        "telemetry_sources": sources, "software": _software(),
        "validity": f"single stream; windows of {cfg.window_requests} requests; the last {STABLE_WINDOWS} windows "
        f"agree within {TOLERANCE:.0%} in throughput and p50 latency; {cfg.min_requests}..{cfg.max_requests} "
        f"requests, at most {cfg.max_point_s:g} s per point",
    }  # fmt: skip
    return ModelProfile.from_points(model, device, provenance, load, points)
