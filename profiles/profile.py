"""Measured model profiles (``profiles/models/<model>/profile-<device>.toml``): schema, loading, scaling.

A profile is what ``edgetb profile`` measured of one model on one device: a sweep of points over
denoising steps (and batch sizes), each with its latency, energy (where a source exists), memory and
quality, plus the fits the simulator draws from:

* ``[[fits.latency]]`` per batch size: ``latency_s(s) = a_s + b_s_per_step * s`` with R²;
* ``[[fits.energy]]`` likewise in joules, only when the device measured energy;
* ``[fits.quality.<metric>]`` for ``accuracy``, ``class_prob`` (the utility's per-image quality) and
  ``fd`` (Fréchet distance, lower is better): the exponential error decay
  ``eps(s) = eps0 * exp(-c1 * s)`` and the saturating piecewise-linear curve, both with R², and
  ``chosen``, the better one.

``[provenance]`` says where the numbers came from (device, telemetry sources, software versions,
date, seed, command). A profile mapped to another device by :func:`scale_profile` has
``provenance.method = "scaled-estimate"``: it is an estimate, never a measurement.

Depends on pydantic and tomli-w only (no node_agent, orchestrator, torch or onnxruntime).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from profiles.fit import AffineFit, ExpDecayFit, QualityFit, SaturatingFit, fit_affine, fit_quality
from profiles.scenario import describe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MODELS_DIR = Path(__file__).resolve().parent / "models"
SCHEMA = 1
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
#: Quality metrics a profile fits, and whether higher is better.
QUALITY_METRICS: dict[str, bool] = {"accuracy": True, "class_prob": True, "fd": False}


class ProfileError(ValueError):
    """A profile is invalid; the message names the file (when from one) and each bad field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Provenance(_Strict):
    """Where the numbers came from.

    Attributes:
        method: ``measured`` (a sweep on a live agent) or ``scaled-estimate`` (:func:`scale_profile`).
        scaled_from: the device profile the estimate was scaled from ("" when measured).
        date: ISO 8601 time of the sweep (UTC).
        seed: seed of the generation requests.
        command: the command line that produced the file.
        agent: the agent's name; hostname: its host.
        device_kind, device_name: what the agent's GetInfo reported.
        execution_providers: ONNX Runtime providers of the loaded model.
        agent_version: the agent's version.
        telemetry_sources: metric -> source label as the agent reported (``unavailable`` included).
        software: package -> version on the profiling side (python, numpy, onnxruntime, edgetb, platform).
        validity: the validity rule every point was held to.
    """

    method: Literal["measured", "scaled-estimate"] = "measured"
    scaled_from: str = ""
    date: str
    seed: int = Field(ge=0)
    command: str = ""
    agent: str = ""
    hostname: str = ""
    device_kind: str
    device_name: str
    execution_providers: tuple[str, ...] = ()
    agent_version: str = ""
    telemetry_sources: dict[str, str] = Field(default_factory=dict)
    software: dict[str, str] = Field(default_factory=dict)
    validity: str = ""


class LoadStats(_Strict):
    """Loading the model (LoadModel after an UnloadModel), over ``repeats`` cycles.

    Attributes:
        load_time_s: mean load time, s; load_time_s_std: its standard deviation, s.
        mem_bytes: mean memory the load added (RSS or device memory delta), bytes (>= 0).
        file_bytes: size of the model's files, bytes.
        repeats: load/unload cycles measured.
    """

    load_time_s: float = Field(ge=0)
    load_time_s_std: float = Field(0.0, ge=0)
    mem_bytes: int = Field(ge=0)
    file_bytes: int = Field(0, ge=0)
    repeats: int = Field(1, ge=1)


class Point(_Strict):
    """One measured (steps, batch) point.

    Latency is end to end at the profiling client (gRPC included); compute is the agent's own
    measured denoising time. Energy fields are None when the device has no energy source. Quality
    fields are None at points where no quality images were scored.
    """

    steps: int = Field(ge=1)
    batch: int = Field(1, ge=1)
    requests: int = Field(ge=1)
    valid: bool
    reason: str = ""
    latency_s: float = Field(gt=0)
    latency_s_std: float = Field(ge=0)
    latency_s_p50: float = Field(gt=0)
    latency_s_p99: float = Field(gt=0)
    compute_s: float = Field(ge=0)
    compute_s_std: float = Field(0.0, ge=0)
    energy_j: float | None = Field(None, ge=0)
    energy_j_std: float | None = Field(None, ge=0)
    energy_source: str = "unavailable"
    peak_mem_bytes: int = Field(0, ge=0)
    quality_images: int = Field(0, ge=0)
    accuracy: float | None = Field(None, ge=0, le=1)
    class_prob: float | None = Field(None, ge=0, le=1)
    class_prob_std: float | None = Field(None, ge=0)
    fd: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _quality_complete(self) -> Point:
        have = [v is not None for v in (self.accuracy, self.class_prob, self.class_prob_std, self.fd)]
        if any(have) and not all(have):
            raise ValueError("accuracy, class_prob, class_prob_std and fd: give all or none")
        if any(have) and self.quality_images < 2:
            raise ValueError("quality_images: must be >= 2 when quality is given")
        return self


class LinearFitTable(_Strict):
    """``y(s) = a + b * s`` at one batch size (latency in s, energy in J); r2 and residual std in y's unit."""

    batch: int = Field(1, ge=1)
    a: float
    b: float
    r2: float = Field(le=1)
    residual_std: float = Field(ge=0)
    n: int = Field(ge=2)

    def fit(self) -> AffineFit:
        return AffineFit(self.a, self.b, self.r2, self.residual_std, self.n)


class QualityFitTable(_Strict):
    """Both fitted forms of one quality metric and the chosen one (see :mod:`profiles.fit`)."""

    higher_is_better: bool
    ceiling: float | None = None
    chosen: Literal["exp", "saturating"]
    r2_exp: float = Field(le=1)
    r2_saturating: float = Field(le=1)
    eps0: float = Field(ge=0)
    c1: float = Field(ge=0)
    y_sat: float
    slope: float
    s_sat: float = Field(gt=0)
    n: int = Field(ge=3)

    @model_validator(mode="after")
    def _ceiling(self) -> QualityFitTable:
        if self.higher_is_better and self.ceiling is None:
            raise ValueError("ceiling: needed when higher_is_better")
        best = "exp" if self.r2_exp >= self.r2_saturating else "saturating"
        if self.chosen != best:
            raise ValueError(f"chosen: must be the form with the larger R² ({best})")
        return self

    def fit(self, metric: str) -> QualityFit:
        return QualityFit(
            metric, self.higher_is_better, self.ceiling,
            ExpDecayFit(self.eps0, self.c1, self.r2_exp, self.n),
            SaturatingFit(self.y_sat, self.slope, self.s_sat, self.r2_saturating, self.n),
            self.r2_exp, self.r2_saturating, self.chosen,
        )  # fmt: skip

    @classmethod
    def of(cls, fit: QualityFit) -> QualityFitTable:
        return cls(
            higher_is_better=fit.higher_is_better, ceiling=fit.ceiling, chosen=fit.chosen, r2_exp=fit.r2_exp,
            r2_saturating=fit.r2_saturating, eps0=fit.exp.eps0, c1=fit.exp.c1, y_sat=fit.saturating.y_sat,
            slope=fit.saturating.slope, s_sat=fit.saturating.s_sat, n=fit.exp.n,
        )  # fmt: skip


def _linear(batch: int, fit: AffineFit) -> LinearFitTable:
    return LinearFitTable(batch=batch, a=fit.a, b=fit.b, r2=fit.r2, residual_std=fit.residual_std, n=fit.n)


class Fits(_Strict):
    latency: tuple[LinearFitTable, ...] = Field(min_length=1)
    energy: tuple[LinearFitTable, ...] = ()
    quality: dict[str, QualityFitTable] = Field(default_factory=dict)

    @field_validator("quality")
    @classmethod
    def _metrics(cls, value: dict[str, QualityFitTable]) -> dict[str, QualityFitTable]:
        for metric, table in value.items():
            if metric not in QUALITY_METRICS:
                raise ValueError(f"unknown metric '{metric}' (known: {', '.join(QUALITY_METRICS)})")
            if table.higher_is_better != QUALITY_METRICS[metric]:
                raise ValueError(f"{metric}.higher_is_better: must be {str(QUALITY_METRICS[metric]).lower()}")
        return value


class ModelProfile(_Strict):
    """One model on one device (the file ``profiles/models/<model>/profile-<device>.toml``)."""

    schema_version: int = Field(SCHEMA, alias="schema", ge=1, le=SCHEMA)
    model: str = Field(pattern=_NAME)
    device: str = Field(pattern=_NAME)
    provenance: Provenance
    load: LoadStats
    points: tuple[Point, ...] = Field(min_length=2)
    fits: Fits

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)

    @model_validator(mode="after")
    def _consistent(self) -> ModelProfile:
        keys = [(p.steps, p.batch) for p in self.points]
        if len(set(keys)) != len(keys):
            raise ValueError("points: (steps, batch) appears more than once")
        batches = {p.batch for p in self.points}
        for table in self.fits.latency:
            if table.batch not in batches:
                raise ValueError(f"fits.latency: batch {table.batch} has no points")
        if 1 not in {t.batch for t in self.fits.latency}:
            raise ValueError("fits.latency: needs a batch 1 fit")
        return self

    # --- reading the fits ------------------------------------------------------------------------

    def latency_fit(self, batch: int = 1) -> AffineFit:
        """The latency fit of ``batch`` (s); raises KeyError when that batch was not profiled."""
        for table in self.fits.latency:
            if table.batch == batch:
                return table.fit()
        raise KeyError(f"{self.model}: no latency fit for batch {batch}")

    def energy_fit(self, batch: int = 1) -> AffineFit | None:
        """The energy fit of ``batch`` (J), or None when energy was unavailable."""
        return next((t.fit() for t in self.fits.energy if t.batch == batch), None)

    def quality_fit(self, metric: str = "class_prob") -> QualityFit:
        if metric not in self.fits.quality:
            raise KeyError(f"{self.model}: no quality fit for '{metric}'")
        return self.fits.quality[metric].fit(metric)

    def points_at(self, batch: int = 1) -> list[Point]:
        return sorted((p for p in self.points if p.batch == batch), key=lambda p: p.steps)

    @property
    def is_estimate(self) -> bool:
        return self.provenance.method != "measured"

    # --- files -----------------------------------------------------------------------------------

    @classmethod
    def build(cls, **values: object) -> ModelProfile:
        """Validate ``values``; raises ProfileError whose message names each bad field."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ProfileError(describe(exc)) from exc

    @classmethod
    def from_points(
        cls,
        model: str,
        device: str,
        provenance: Mapping[str, object],
        load: Mapping[str, object],
        points: Sequence[Mapping[str, object]],
    ) -> ModelProfile:
        """A profile of measured ``points`` (dicts of :class:`Point` fields) with its fits computed.

        Latency (and energy, when every point of a batch has it) is fitted per batch size with at
        least 2 step counts; the quality metrics at batch 1 when at least 3 points were scored.
        """
        latency, energy = [], []
        for batch in sorted({int(p.get("batch", 1)) for p in points}):  # type: ignore[call-overload]
            at = sorted((p for p in points if p.get("batch", 1) == batch), key=lambda p: p["steps"])  # type: ignore[arg-type,return-value]
            steps = [float(p["steps"]) for p in at]  # type: ignore[arg-type]
            if len(set(steps)) < 2:
                continue
            latency.append(_linear(batch, fit_affine(steps, [p["latency_s"] for p in at])))  # type: ignore[misc]
            if all(p.get("energy_j") is not None for p in at):
                energy.append(_linear(batch, fit_affine(steps, [p["energy_j"] for p in at])))  # type: ignore[misc]
        quality = {}
        scored = sorted((p for p in points if p.get("batch", 1) == 1 and p.get("fd") is not None),
                        key=lambda p: p["steps"])  # type: ignore[arg-type,return-value]  # fmt: skip
        if len(scored) >= 3:
            for metric, higher in QUALITY_METRICS.items():
                fit = fit_quality(
                    [p["steps"] for p in scored], [p[metric] for p in scored], metric,  # type: ignore[misc]
                    higher_is_better=higher, ceiling=1.0 if higher else None,
                )  # fmt: skip
                quality[metric] = QualityFitTable.of(fit).model_dump()
        return cls.build(
            schema=SCHEMA, model=model, device=device, provenance=dict(provenance), load=dict(load),
            points=[dict(p) for p in points],
            fits={"latency": [t.model_dump() for t in latency], "energy": [t.model_dump() for t in energy],
                  "quality": quality},
        )  # fmt: skip

    @classmethod
    def load_file(cls, path: Path | str) -> ModelProfile:
        """Read and validate a profile file; ProfileError starts with the file and names the field."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ProfileError(f"{path}: {exc}") from exc
        try:
            return cls.build(**data)
        except ProfileError as exc:
            raise ProfileError(f"{path}: {exc}") from exc

    def to_toml(self, header: str = "") -> str:
        """The TOML text (``None`` fields left out), after ``header`` comment lines."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        lines = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
        return lines + tomli_w.dumps(data)

    def write(self, path: Path | str, header: str = "") -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_toml(header))
        return path


def profile_path(model: str, device: str, models_dir: Path = MODELS_DIR) -> Path:
    """Where the profile of ``model`` on ``device`` lives."""
    for name, value in (("model", model), ("device", device)):
        if not re.match(_NAME, value):
            raise ProfileError(f"{name}: '{value}' is not a valid name")
    return Path(models_dir) / model / f"profile-{device}.toml"


def load_profile(model: str, device: str, models_dir: Path = MODELS_DIR) -> ModelProfile:
    """The profile of ``model`` on ``device``; ProfileError when missing or invalid."""
    path = profile_path(model, device, models_dir)
    if not path.is_file():
        raise ProfileError(f"{path}: no profile of {model} on {device} (run `edgetb profile`)")
    profile = ModelProfile.load_file(path)
    if profile.model != model or profile.device != device:
        raise ProfileError(f"{path}: model/device: file says {profile.model}/{profile.device}")
    return profile


def shipped_profiles(models_dir: Path = MODELS_DIR) -> list[Path]:
    """Every ``profile-*.toml`` under ``models_dir``, sorted."""
    return sorted(Path(models_dir).glob("*/profile-*.toml"))


def scale_profile(profile: ModelProfile, ratio: float, target: str, power_w: float | None = None) -> ModelProfile:
    """An ESTIMATE of ``profile`` on another device that is ``ratio`` times faster.

    The rule: per point, the measured compute time scales by ``1 / ratio`` and the rest of the
    latency (request overhead, transfers) is kept; the fits are recomputed on the scaled points.
    Quality is the same model's numerics and is kept. Energy, when ``power_w`` (the target's power
    under load, W) is given, is ``power_w`` times the scaled compute time; otherwise the target's
    energy is left unknown. Memory is kept.

    Args:
        profile: the measured profile.
        ratio: target throughput / source throughput (e.g. :func:`profiles.devices.throughput_ratio`), > 0.
        target: the target device profile's name.
        power_w: the target's power under load, W, or None.
    """
    if not (math.isfinite(ratio) and ratio > 0):
        raise ValueError(f"ratio: must be a finite number > 0, got {ratio!r}")
    points = []
    for p in profile.points:
        compute_s = p.compute_s / ratio
        shift_s = p.compute_s - compute_s
        scale = 1.0 / ratio
        energy = power_w * compute_s if power_w is not None else None
        points.append(
            p.model_copy(
                update={
                    "latency_s": max(p.latency_s - shift_s, 1e-9),
                    "latency_s_p50": max(p.latency_s_p50 - shift_s, 1e-9),
                    "latency_s_p99": max(p.latency_s_p99 - shift_s, 1e-9),
                    "compute_s": compute_s,
                    "compute_s_std": p.compute_s_std * scale,
                    "energy_j": energy,
                    "energy_j_std": power_w * p.compute_s_std * scale if power_w is not None else None,
                    "energy_source": "modeled" if power_w is not None else "unavailable",
                }
            )
        )
    provenance = profile.provenance.model_copy(
        update={"method": "scaled-estimate", "scaled_from": profile.device, "validity": ""}
    )
    # the fits are recomputed on the scaled points, so every curve matches its own points
    return ModelProfile.from_points(
        profile.model, target, provenance.model_dump(), profile.load.model_dump(), [p.model_dump() for p in points]
    )
