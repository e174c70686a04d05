"""Load scenarios (``profiles/scenarios/*.toml``): the workload, the utility and cluster hints of a run.

A scenario describes *what* is asked of the testbed, independently of any policy: how long a slot
and a caching frame are, which models users request and how popular they are (Zipf), how many users
there are, how often they ask (Poisson) and how they weigh latency and energy against quality.
``orchestrator.workload`` turns it into a seeded list of requests.

Ranges: fields shown as ``Range`` accept one number (every user gets it) or ``[low, high]`` (each
user draws uniformly from it with the workload's seed).

Quality: ``utility.quality = "class-probability"``: the evaluator's softmax probability of the
requested class for the one generated image, in [0, 1]. It is computable per request (the Fréchet
distance needs a batch); its mean over a batch tracks the evaluator's accuracy.

This module depends on pydantic only (no ``node_agent``, ``orchestrator``, torch or onnxruntime).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class ScenarioError(ValueError):
    """A scenario is invalid; the message names the file (when from one) and each bad field."""


def _as_range(value: object) -> object:
    """One number -> ``(v, v)``; ``[low, high]`` -> ``(low, high)``; anything else is refused."""
    if isinstance(value, bool):
        raise ValueError("must be a number or [low, high]")
    if isinstance(value, (int, float)):
        return (float(value), float(value))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return tuple(value)
    raise ValueError("must be a number or [low, high]")


#: ``(low, high)``, written in TOML as one number or ``[low, high]``.
Range = Annotated[tuple[float, float], BeforeValidator(_as_range)]


def _check_range(value: tuple[float, float], *, gt: float | None = None, ge: float | None = None, le: float) -> None:
    """Raise ValueError (``must be > 0``, ...) unless ``low <= high`` and both lie within the bounds."""
    low, high = value
    for v in value:
        if v != v:  # NaN
            raise ValueError("must not be NaN")
        if gt is not None and not v > gt:
            raise ValueError(f"must be > {gt:g}")
        if ge is not None and not v >= ge:
            raise ValueError(f"must be >= {ge:g}")
        if not v <= le:
            raise ValueError(f"must be <= {le:g}")
    if low > high:
        raise ValueError("low must not exceed high")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timing(_Strict):
    """Attributes:
    slot_s: slot length, s; the allocator decides once per slot.
    frame_slots: F, slots per caching frame; the caching policy decides once per frame.
    slots: default run length, slots.
    """

    slot_s: float = Field(1.0, gt=0, le=3600)
    frame_slots: int = Field(10, ge=1, le=100_000)
    slots: int = Field(60, ge=1, le=10_000_000)


class Popularity(_Strict):
    """Attributes:
    zipf_s: Zipf exponent s >= 0: P(rank k) ∝ k^-s (0 = uniform).
    drift_frames: K; every K frames the popularity order shifts by one place (the rank-2 model
        becomes rank 1, the old rank 1 goes last); 0 = no drift.
    """

    zipf_s: float = Field(1.0, ge=0, le=20)
    drift_frames: int = Field(0, ge=0, le=1_000_000)


class Models(_Strict):
    """Attributes:
    names: the models users request (names of folders in ``profiles/models/``), 1..64, unique.
    rank: popularity order, most popular first: a permutation of ``names``; None = ``names`` order.
    popularity: Zipf exponent and drift.
    """

    names: tuple[Annotated[str, Field(pattern=_NAME)], ...] = Field(min_length=1, max_length=64)
    rank: tuple[str, ...] | None = None
    popularity: Popularity = Popularity()

    @field_validator("names")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if value.count(name) > 1:
                raise ValueError(f"'{name}' appears more than once")
        return value

    @field_validator("rank")
    @classmethod
    def _rank(cls, value: tuple[str, ...] | None, info: ValidationInfo) -> tuple[str, ...] | None:
        names = info.data.get("names")
        if value is not None and names is not None and sorted(value) != sorted(names):
            raise ValueError("must list each of models.names exactly once")
        return value

    @property
    def order(self) -> tuple[str, ...]:
        """Popularity order at frame 0, most popular first."""
        return self.rank if self.rank is not None else self.names


class Users(_Strict):
    """Attributes:
    count: U, number of users.
    rate_per_s: Poisson arrival rate per user, requests/s, in (0, 100].
    w_latency: latency weight per user, per s, in [0, 1e6]; None = ``utility.w_latency``.
    w_energy: energy weight per user, per J, in [0, 1e6]; None = ``utility.w_energy``.
    quality_floor: least acceptable per-image quality per user, in [0, 1]; None = no floor.
    """

    count: int = Field(ge=1, le=10_000)
    rate_per_s: Range
    w_latency: Range | None = None
    w_energy: Range | None = None
    quality_floor: Range | None = None

    @field_validator("rate_per_s")
    @classmethod
    def _rate(cls, value: tuple[float, float]) -> tuple[float, float]:
        _check_range(value, gt=0, le=100)
        return value

    @field_validator("w_latency", "w_energy")
    @classmethod
    def _weight(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None:
            _check_range(value, ge=0, le=1e6)
        return value

    @field_validator("quality_floor")
    @classmethod
    def _floor(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None:
            _check_range(value, ge=0, le=1)
        return value


class Requests(_Strict):
    """Attributes:
    classes: labels are 0..classes-1.
    labels: label distribution; only ``uniform`` (over the classes).
    deadline_s: per-request deadline, s from arrival.
    max_per_run: hard cap on requests per run; a workload above it is an error.
    """

    classes: int = Field(10, ge=1, le=100_000)
    labels: Literal["uniform"] = "uniform"
    deadline_s: float = Field(3.0, gt=0, le=86_400)
    max_per_run: int = Field(5000, ge=1, le=10_000_000)


class Utility(_Strict):
    """Utility per request = quality − w_latency·latency_s − w_energy·energy_j.

    Attributes:
        quality: ``class-probability``: the evaluator's softmax probability of the requested class
            for the one generated image, in [0, 1].
        w_latency: default latency weight, per s.
        w_energy: default energy weight, per J.
    """

    quality: Literal["class-probability"] = "class-probability"
    w_latency: float = Field(0.5, ge=0, le=1e6)
    w_energy: float = Field(0.01, ge=0, le=1e6)


class ClusterHints(_Strict):
    """Hints that ``edgetb up`` / ``edgetb demo`` use to build a local cluster; policies never read them.

    Attributes:
        edge_agents: edge node agents to start.
        cache_models: models each edge agent keeps loaded at once (<= number of models).
        cloud_delay_ms: extra (emulated) delay of a request served by the cloud agent, ms.
    """

    edge_agents: int = Field(2, ge=1, le=64)
    cache_models: int = Field(1, ge=1, le=64)
    cloud_delay_ms: float = Field(200.0, ge=0, le=60_000)


class Radio(_Strict):
    """The emulated downlink that carries each image to its user (``orchestrator.radio``); modeled.

    Attributes:
        bandwidth_hz: the band one cell shares among all users per slot, Hz.
        image_bytes: bytes sent per generated image.
        snr_db: each user's mean downlink SNR, dB, drawn per user from ``[low, high]``.
        fading: ``rayleigh``: each request's SNR is the mean times an exponential power gain
            ``|h|^2 ~ Exp(1)`` (block fading per request); ``none``: the mean.
        min_share: the least fraction of the slot's free band a request takes, (0, 1].
        fixed_share: the fraction of the free band a request takes when its policy does not choose
            one (the fixed policies: ``[policy] bandwidth_share``), (0, 1].
    """

    bandwidth_hz: float = Field(gt=0, le=1e11)
    image_bytes: int = Field(ge=1, le=10**9)
    snr_db: Range
    fading: Literal["rayleigh", "none"] = "rayleigh"
    min_share: float = Field(0.05, gt=0, le=1)
    fixed_share: float = Field(0.5, gt=0, le=1)

    @field_validator("snr_db")
    @classmethod
    def _snr(cls, value: tuple[float, float]) -> tuple[float, float]:
        _check_range(value, ge=-50, le=80)
        return value


class Scenario(_Strict):
    """A whole scenario file (see the module docstring and ``profiles/scenarios/t2drl.toml``)."""

    name: str = Field(pattern=_NAME)
    description: str = Field("", max_length=1000)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    timing: Timing = Timing()
    models: Models
    users: Users
    requests: Requests = Requests()
    utility: Utility = Utility()
    cluster: ClusterHints = ClusterHints()
    radio: Radio | None = None  # no [radio] table: images reach users at no cost

    @model_validator(mode="after")
    def _cache_fits(self) -> Scenario:
        if self.cluster.cache_models > len(self.models.names):
            raise ValueError(f"cluster.cache_models: must be <= the number of models ({len(self.models.names)})")
        return self

    @classmethod
    def build(cls, **values: object) -> Scenario:
        """Validate ``values``; raises ScenarioError whose message names each bad field."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ScenarioError(describe(exc)) from exc

    @classmethod
    def load(cls, path: Path | str) -> Scenario:
        """Read and validate a scenario file.

        Raises:
            ScenarioError: unreadable file, unknown key, wrong type or invalid value; the message
                starts with the file and names the field (``t2drl.toml: users.rate_per_s: must be > 0``).
        """
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ScenarioError(f"{path}: {exc}") from exc
        try:
            return cls.build(**data)
        except ScenarioError as exc:
            raise ScenarioError(f"{path}: {exc}") from exc


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name (``"t2drl"``), or a scenario file by path."""
    path = Path(name_or_path)
    if path.suffix != ".toml" and re.match(_NAME, str(name_or_path)):
        path = SCENARIOS_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            shipped = ", ".join(sorted(p.stem for p in SCENARIOS_DIR.glob("*.toml"))) or "none"
            raise ScenarioError(f"scenario {str(name_or_path)!r} is not shipped ({shipped}); give one of those or a "
                                "scenario .toml file")  # fmt: skip
    return Scenario.load(path)


_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def describe(exc: ValidationError) -> str:
    """One line per error, ``field.path: message (got value)`` (a missing field: ``field.path: missing``),
    joined by ``; ``; long values are cut at 80 characters."""
    lines = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] in _BOUNDS:
            bound = next(iter(error["ctx"].values()))
            message = f"must be {_BOUNDS[error['type']]} {bound:g}" if isinstance(bound, (int, float)) else message
        elif error["type"] == "extra_forbidden":
            message = "unknown field"
        if not error["loc"]:  # a check across fields: its message starts with the field
            lines.append(message)
            continue
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "missing":
            lines.append(f"{where}: missing")
            continue
        got = repr(error.get("input"))
        lines.append(f"{where}: {message} (got {got if len(got) <= 80 else got[:77] + '...'})")
    return "; ".join(lines)
