"""The simulated device's timing: modeled compute time and energy drawn from measured model profiles.

When the agent runs ``--device simulated`` with a *named* device profile (a TOML file whose top-level
``name`` is e.g. ``jetson-orin-nano``, as in ``profiles/devices/``), every model whose folder holds
``profile-<name>.toml`` (schema: :mod:`profiles.profile`; read here with tomllib, the agent has no
pydantic) gets, per request, a modeled compute time of that device:

* **Mean and standard deviation** at the request's (steps, batch), from the profile's points
  (``compute_s``, ``compute_s_std``: the agent's own compute time, not the client's latency): at a
  profiled step count, that point; between two, linear interpolation of both in steps; beyond the
  profiled range, linear extrapolation of the mean from the two nearest points (cut at 0) and the
  nearest point's std. A batch size that was not profiled uses the nearest profiled batch (ties: the
  larger) with mean and std scaled by ``batch / that_batch`` (linear in batch: no batching gain
  assumed beyond that point). Every point counts, valid or not, as in the profile's own fits.
* **The draw**: that normal truncated to >= 0, one uniform number per request from the agent's numpy
  generator (seed ``sim_seed``) through the inverse CDF, so a run is reproducible.
* **Energy** (``modeled``): where the profile measured energy at that batch (every point there has
  ``energy_j``), the profile's mean power there (its interpolated energy over its interpolated compute
  time) times the modeled compute time; else the device profile's ``[sim] max_power_w`` times it.

The real ONNX denoiser still runs for every request (real images; ``compute_time_s`` stays measured).
:class:`HeldCompute` then keeps the model's worker, and so the response, until the modeled time has
passed since the compute began: requests queue behind it as on the modeled device, and the hold
counts as busy time for the simulated device's power. The hold is reported as an emulated delay
with a label. A real compute longer than the modeled time is not cut: it is counted and reported.
"""

from __future__ import annotations

import bisect
import logging
import math
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any, Protocol

import numpy as np

from node_agent.runtime._toml_fields import Table
from node_agent.runtime.errors import Cancelled, DeadlineExceeded
from node_agent.runtime.worker import ComputeInstrument

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_METHODS = ("measured", "scaled-estimate")
_NORMAL = NormalDist()
#: How often a hold checks whether the client went away or the agent is closing, s.
HOLD_POLL_S = 0.02


class SimTimingError(ValueError):
    """A device or model profile is unusable; the message names the file and the field."""


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SimTimingError(f"{path}: {exc}") from exc


def _nonneg(t: Table, raw: Mapping[str, Any], key: str, default: float | None = None, required: bool = False) -> Any:
    """A number >= 0 of ``raw`` (read through ``t`` for the messages); absent and not required: ``default``."""
    if key not in raw and not required:
        return default
    value = t.float(key)  # "missing" when required and absent
    if value < 0:
        raise t.fail(key, f"must be >= 0, got {value}")
    return value


@dataclass(frozen=True)
class DeviceProfileRef:
    """The named device profile the simulated device was opened from.

    Attributes:
        name: its top-level ``name``; model profiles are ``profile-<name>.toml``.
        path: the file.
        max_power_w: its ``[sim] max_power_w`` (W), None when absent.
    """

    name: str
    path: Path
    max_power_w: float | None


def read_device_profile(path: Path) -> DeviceProfileRef | None:
    """The device profile's name and ``[sim] max_power_w``; None when the file has no top-level ``name``."""
    path = Path(path)
    data = _read_toml(path)
    if "name" not in data:
        return None
    top = Table(data, str(path), "", SimTimingError)
    name = top.string("name")
    if not _NAME.match(name):
        raise top.fail("name", f"{name!r} must match {_NAME.pattern}")
    raw_sim = top.raw_table("sim")
    max_power_w = _nonneg(Table(raw_sim, str(path), "sim.", SimTimingError), raw_sim, "max_power_w")
    return DeviceProfileRef(name, path, max_power_w)


@dataclass(frozen=True)
class _Point:
    steps: int
    compute_s: float
    compute_s_std: float
    energy_j: float | None


@dataclass(frozen=True)
class Estimate:
    """The modeled distribution at one (steps, batch).

    Attributes:
        compute_s: mean compute time, s; compute_s_std: its standard deviation, s.
        energy_j: mean energy, J, None when the profile has no energy at that batch.
        batch: the profiled batch it came from (scaled by request batch / this).
    """

    compute_s: float
    compute_s_std: float
    energy_j: float | None
    batch: int


def _line(x0: float, y0: float, x1: float, y1: float, x: float) -> float:
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


@dataclass(frozen=True)
class ModelTiming:
    """One model's profile on the simulated device: its points by batch, sorted by steps."""

    model: str
    device: str
    path: Path
    method: str
    points: Mapping[int, tuple[_Point, ...]]

    @classmethod
    def from_file(cls, path: Path, model: str, device: str) -> ModelTiming:
        """Read and check ``profile-<device>.toml``; SimTimingError names the file and the field."""
        data = _read_toml(path)
        file = str(path)
        top = Table(data, file, "", SimTimingError)
        for key, want in (("model", model), ("device", device)):
            if (got := top.string(key)) != want:
                raise top.fail(key, f"is {got!r}, expected {want!r}")
        method = Table(top.raw_table("provenance"), file, "provenance.", SimTimingError).choice(
            "method", _METHODS, "measured"
        )
        raw = data.get("points")
        if not isinstance(raw, list) or len(raw) < 2 or not all(isinstance(p, dict) for p in raw):
            raise top.fail("points", "must be an array of at least 2 tables ([[points]])")
        by_batch: dict[int, dict[int, _Point]] = {}
        for i, item in enumerate(raw):
            t = Table(item, file, f"points[{i}].", SimTimingError)
            steps, batch = t.int("steps", 1, 1_000_000), t.int("batch", 1, 1_000_000, default=1)
            point = _Point(
                steps,
                _nonneg(t, item, "compute_s", required=True),
                _nonneg(t, item, "compute_s_std", 0.0),
                _nonneg(t, item, "energy_j"),
            )
            if steps in by_batch.setdefault(batch, {}):
                raise top.fail(f"points[{i}]", f"(steps, batch) = ({steps}, {batch}) appears more than once")
            by_batch[batch][steps] = point
        for batch, at in sorted(by_batch.items()):
            if len(at) < 2:
                raise top.fail("points", f"batch {batch} has one point; at least 2 step counts are needed per batch")
        points = {b: tuple(at[s] for s in sorted(at)) for b, at in sorted(by_batch.items())}
        return cls(model, device, Path(path), method, points)

    @property
    def label(self) -> str:
        """What the hold and the energy of this model's responses are modeled from."""
        return f"simulated-device:{self.device}:compute drawn from {self.path.name} ({self.method})"

    def estimate(self, steps: int, batch: int) -> Estimate:
        """Mean and std of the compute time (and the mean energy) at (steps, batch); see the module doc."""
        base = min(self.points, key=lambda b: (abs(b - batch), -b))
        pts = self.points[base]
        xs = [p.steps for p in pts]
        has_energy = all(p.energy_j is not None for p in pts)
        if steps in xs:
            p = pts[xs.index(steps)]
            mean_s, std_s, energy_j = p.compute_s, p.compute_s_std, p.energy_j if has_energy else None
        else:
            if steps < xs[0]:
                lo, hi, nearest = pts[0], pts[1], pts[0]
            elif steps > xs[-1]:
                lo, hi, nearest = pts[-2], pts[-1], pts[-1]
            else:
                i = bisect.bisect_right(xs, steps)
                lo, hi, nearest = pts[i - 1], pts[i], None
            mean_s = max(0.0, _line(lo.steps, lo.compute_s, hi.steps, hi.compute_s, steps))
            if nearest is None:
                std_s = _line(lo.steps, lo.compute_s_std, hi.steps, hi.compute_s_std, steps)
            else:
                std_s = nearest.compute_s_std
            energy_j = None
            if has_energy:
                energy_j = max(0.0, _line(lo.steps, lo.energy_j, hi.steps, hi.energy_j, steps))  # type: ignore[arg-type]
        scale = batch / base
        return Estimate(mean_s * scale, std_s * scale, None if energy_j is None else energy_j * scale, base)


def truncated_normal(mean: float, std: float, u: float) -> float:
    """The inverse-CDF draw of N(mean, std) truncated to >= 0 from one uniform ``u`` in [0, 1)."""
    if std <= 0.0:
        return max(mean, 0.0)
    low = _NORMAL.cdf(-mean / std)
    p = min(max(low + u * (1.0 - low), 1e-12), 1.0 - 1e-12)
    return max(mean + std * _NORMAL.inv_cdf(p), 0.0)


@dataclass(frozen=True)
class Draw:
    """One request's modeled compute time and energy.

    Attributes:
        compute_s: the drawn compute time, s; mean_s, std_s: its distribution, s.
        energy_j: modeled energy, J (None when neither the profile nor the device profile gives power).
        energy_method: how ``energy_j`` was modeled ("profile ..." or "max_power_w x modeled compute ...").
        label: the emulation label of the hold.
    """

    compute_s: float
    mean_s: float
    std_s: float
    energy_j: float | None
    energy_method: str
    label: str


class _Meter(Protocol):
    def start(self) -> int: ...

    def end(self, token: int) -> None: ...


class SimTiming:
    """One agent's simulated timing: the device profile, the seeded generator, the loaded models' profiles.

    Args:
        device: the named device profile.
        max_power_w: the simulated device's maximum power, W, for models whose profile has no energy.
        seed: seed of the draws (``--sim-seed``).
    """

    def __init__(self, device: DeviceProfileRef, max_power_w: float | None, seed: int = 0) -> None:
        self.device = device
        self.max_power_w = max_power_w
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._models: dict[str, ModelTiming] = {}
        self.overruns = 0

    def profile_path(self, model_dir: Path) -> Path:
        return Path(model_dir) / f"profile-{self.device.name}.toml"

    def load(self, model: str, model_dir: Path) -> ModelTiming | None:
        """Read the model's profile for this device if it has one; SimTimingError when it is malformed."""
        path = self.profile_path(model_dir)
        timing = ModelTiming.from_file(path, model, self.device.name) if path.is_file() else None
        with self._lock:
            self._models.pop(model, None)
            if timing is not None:
                self._models[model] = timing
        return timing

    def forget(self, model: str) -> None:
        with self._lock:
            self._models.pop(model, None)

    def models(self) -> dict[str, ModelTiming]:
        with self._lock:
            return dict(self._models)

    def draw(self, model: str, steps: int, batch: int) -> Draw | None:
        """Draw the modeled compute time of one request (one uniform number); None for a model without profile."""
        with self._lock:
            timing = self._models.get(model)
            if timing is None:
                return None
            u = float(self._rng.random())
        est = timing.estimate(steps, batch)
        compute_s = truncated_normal(est.compute_s, est.compute_s_std, u)
        if est.energy_j is not None:
            energy_j: float | None = est.energy_j * compute_s / est.compute_s if est.compute_s > 0 else est.energy_j
            method = (
                f"modeled: profile energy x modeled compute (mean power of {timing.path.name} at batch {est.batch}, "
                f"{timing.method})"
            )
        elif self.max_power_w is not None:
            energy_j = self.max_power_w * compute_s
            method = f"modeled: max_power_w x modeled compute ({self.max_power_w:g} W, {self.device.path.name})"
        else:
            energy_j, method = None, "unavailable: no energy in the profile and no max_power_w in the device profile"
        return Draw(compute_s, est.compute_s, est.compute_s_std, energy_j, method, timing.label)

    def count_overrun(self, real_s: float, draw: Draw) -> None:
        """Count (and log: the first at WARNING) a request whose real compute outlasted its modeled time."""
        with self._lock:
            self.overruns += 1
            first = self.overruns == 1
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "real compute %.4f s exceeded the modeled %.4f s (%s): not held; counted in GetInfo's device notes",
            real_s,
            draw.compute_s,
            draw.label,
        )

    def note(self, models_with_profile: list[str]) -> str:
        """GetInfo's note: which device profile, which models are timed from profiles, the overrun count."""
        loaded = self.models()
        names = [f"{m} ({loaded[m].method})" if m in loaded else f"{m} (not loaded)" for m in models_with_profile]
        timed = ", ".join(names) if names else f"none (no model has profile-{self.device.name}.toml)"
        return (
            f"simulated from device profile '{self.device.name}' ({self.device.path}); compute time and energy "
            f"drawn from profile-{self.device.name}.toml (seed {self.seed}) for models: {timed}; "
            f"{self.overruns} request(s) whose real compute exceeded the modeled time (not held)"
        )

    def held(
        self,
        inner: ComputeInstrument | None,
        draw: Draw,
        *,
        deadline_s: float | None,
        after_s: float,
        stop: Callable[[], bool],
        busy: _Meter | None,
    ) -> HeldCompute:
        return HeldCompute(inner, draw, deadline_s, after_s, stop, busy, self.count_overrun)


class HeldCompute:
    """A compute instrument that holds the model's worker after the real compute until the modeled time has passed.

    It wraps the agent's energy meter (whose window still covers the real compute only). ``end``
    runs on the worker thread: when less than ``draw.compute_s`` has passed since ``begin``, it waits
    out the rest (counted busy on ``busy``), polling ``stop`` (client gone, agent closing: Cancelled).
    A hold that, with ``after_s`` of emulated delay still to come, would deliver the result after
    ``deadline_s`` fails the request at once with DeadlineExceeded. A compute that failed is not held.

    Attributes:
        hold_s: the hold (s), 0 when none; overrun: whether the real compute was longer than modeled.
    """

    def __init__(
        self,
        inner: ComputeInstrument | None,
        draw: Draw,
        deadline_s: float | None,
        after_s: float,
        stop: Callable[[], bool],
        busy: _Meter | None,
        on_overrun: Callable[[float, Draw], None],
    ) -> None:
        self.inner, self.draw = inner, draw
        self.deadline_s, self.after_s = deadline_s, after_s
        self.stop, self.busy, self.on_overrun = stop, busy, on_overrun
        self.started_s = math.nan
        self.hold_s = 0.0
        self.overrun = False

    def begin(self) -> Any:
        self.started_s = time.monotonic()
        return self.inner.begin() if self.inner is not None else None

    def end(self, handle: Any) -> Any:
        result = self.inner.end(handle) if self.inner is not None else None
        if sys.exc_info()[1] is not None:
            return result  # called from the worker's `finally` while the compute's error propagates
        now = time.monotonic()
        hold_s = self.started_s + self.draw.compute_s - now
        if hold_s <= 0.0:
            self.overrun = True
            self.on_overrun(now - self.started_s, self.draw)
            return result
        if self.deadline_s is not None and now + hold_s + self.after_s > self.deadline_s:
            raise DeadlineExceeded(
                f"the modeled compute time of {self.draw.compute_s:.3f} s ({self.draw.label}) would deliver "
                "the result after the deadline"
            )
        self.hold_s = hold_s
        token = self.busy.start() if self.busy is not None else None
        try:
            until = now + hold_s
            while (left := until - time.monotonic()) > 0:
                if self.stop():
                    raise Cancelled("stopped while holding the modeled compute time")
                time.sleep(min(left, HOLD_POLL_S))
        finally:
            if self.busy is not None and token is not None:
                self.busy.end(token)
        return result

    @property
    def label(self) -> str:
        """The hold's emulation label for this response."""
        tail = ": real compute was longer, not held" if self.overrun else ""
        return f"{self.draw.label}: modeled {self.draw.compute_s:.4f} s{tail}"
