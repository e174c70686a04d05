"""The daemon's settings: one validated pydantic model, read from ``orchestrator.toml``.

Example::

    listen = "127.0.0.1:50051"          # the Orchestrator gRPC API
    metrics_listen = "127.0.0.1:9464"   # Prometheus /metrics; "" = none
    heartbeat_s = 2.0                   # agents missing 3 intervals are down
    run_dir = "runs"                    # one SQLite file per run
    telemetry_batch_size = 10           # samples per telemetry message (10..100)

    [limits]
    max_inflight_requests = 64

    [policy]                            # optional: the policy loop
    caching = "most-popular"
    allocation = "fixed-steps"

    [[agents]]                          # static agents (health-checked unless they register)
    name = "edge-a"
    address = "127.0.0.1:50061"
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.policies import LEARNED_ALLOCATION, LEARNED_CACHING
from orchestrator.run_folder import read_run
from orchestrator.utility import MAX_WEIGHT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ConfigError(ValueError):
    """A setting is invalid; the message names the setting (and the file, when from one)."""


def check_host_port(value: str, *, allow_zero: bool = True) -> str:
    """``value`` if it is HOST:PORT (port 0 picks a free one where ``allow_zero``), else ValueError."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535 or (not allow_zero and int(port) == 0):
        raise ValueError(f"'{value}' is not HOST:PORT")
    return value


class StaticAgent(BaseModel):
    """An agent the daemon knows from its configuration (health-checked until it registers).

    Attributes:
        name: the agent's name (as it reports it).
        address: its HOST:PORT.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=_NAME.pattern)
    address: str

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_host_port(value, allow_zero=False)


class Limits(BaseModel):
    """Bounds of the daemon.

    Attributes:
        max_agents: agents known at once (static and registered); beyond it registration fails.
        max_inflight_requests: Submit calls served at once; beyond it RESOURCE_EXHAUSTED.
        max_concurrent_rpcs: RPCs of any kind handled at once (gRPC answers RESOURCE_EXHAUSTED).
        max_message_bytes: largest message received or sent, bytes.
        default_deadline_s: a Submit's time limit when it sets none, seconds.
        max_deadline_s: the largest time limit a Submit may ask for, seconds.
        store_queue_capacity: rows waiting for the SQLite writer; beyond it rows are counted and logged.
        store_batch_rows: rows the writer commits per transaction at most.
        ingest_max_failures: failed telemetry streams in a row before ingest of an agent stops
            (it restarts when the agent comes up again).
        ingest_backoff_max_s: largest wait between telemetry reconnects, seconds.
        rpc_timeout_s: time limit of health checks and model listings, seconds.
        load_timeout_s: time limit of a LoadModel call, seconds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_agents: int = Field(256, ge=1, le=100_000)
    max_inflight_requests: int = Field(64, ge=1, le=100_000)
    max_concurrent_rpcs: int = Field(512, ge=1, le=100_000)
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024, le=1 << 30)
    default_deadline_s: float = Field(60.0, gt=0, le=3600)
    max_deadline_s: float = Field(600.0, gt=0, le=86_400)
    store_queue_capacity: int = Field(100_000, ge=10, le=10_000_000)
    store_batch_rows: int = Field(1000, ge=1, le=100_000)
    ingest_max_failures: int = Field(20, ge=1, le=10_000)
    ingest_backoff_max_s: float = Field(5.0, gt=0, le=300)
    rpc_timeout_s: float = Field(5.0, gt=0, le=300)
    load_timeout_s: float = Field(120.0, gt=0, le=3600)


class RadioConfig(BaseModel):
    """The emulated radio downlink (``[policy.radio]``, ``orchestrator.radio``): each served image waits out its
    modeled transmission on the share of the slot's band its allocation took before the daemon answers.

    Attributes:
        bandwidth_hz: the band all users share per slot, Hz.
        image_bytes: bytes sent per generated image.
        min_share: the least fraction of the slot's free band a request takes, (0, 1].
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    bandwidth_hz: float = Field(gt=0, le=1e11)
    image_bytes: int = Field(ge=1, le=10**9)
    min_share: float = Field(0.05, gt=0, le=1)


class PolicyConfig(BaseModel):
    """The policy loop (``[policy]``): caching once per frame of ``frame_slots`` slots, allocation per request.

    Attributes:
        caching: caching policy run once per frame on the edge agents: ``most-popular``,
            ``popular-spread`` (the cluster's top models, different ones per agent), ``lru``, ``random``,
            ``no-cache``, ``ddqn`` (trained: ``checkpoint``), or ``none`` (no caching
            decisions: models stay as loaded).
        allocation: per-request policy: ``fixed-steps``, ``greedy-latency``, ``sqrt-band`` (fixed steps, the band
            by the square-root rule), ``d3pg`` / ``ddpg`` / ``sac`` / ``td3``
            (trained: ``checkpoint``), ``external`` (decided per request by code in the daemon's process:
            the envs' live backend), or ``router`` (the router's own choice: loaded first, else most free
            memory).
        slot_s: slot length, seconds.
        frame_slots: slots per caching frame.
        cache_models: models each edge agent keeps loaded.
        fixed_steps: denoising steps of ``fixed-steps``, and the default of ``greedy-latency``.
        step_candidates: step counts ``greedy-latency`` chooses from.
        cloud_agent: name of the cloud agent (all models behind an emulated WAN delay; never cached).
        w_latency: utility lost per second of latency, per s (copy the scenario's ``[utility]``).
        w_energy: utility lost per joule, per J (copy the scenario's ``[utility]``).
        evaluator: folder of the quality evaluator; empty: the shipped ``profiles/evaluator/digits``.
        max_cache_ops: LoadModel/UnloadModel calls in flight at once across agents.
        ewma_alpha: weight of the newest served request in the measured means, (0, 1].
        seed: seed of the ``random`` caching policy's draws.
        model_rank: models in preferred order; breaks ties of popularity (then the name).
        checkpoint: folder of an ``edgetb train --env t2drl`` run (``result.json``, ``caching.pt``,
            ``allocation.pt``) whose learners the ``ddqn`` / ``d3pg`` / ``ddpg`` / ``sac`` / ``td3`` policies run.
        fine_tune: the learned policies keep learning from the live rewards (exploring a little); the
            tuned learners are written next to the run's store as ``<run id>-tuned/`` when the daemon stops.
        bandwidth_share: fraction of the slot's free downlink band a request gets when its allocation
            policy does not choose one (the fixed policies), (0, 1]; used with ``radio`` only.
        radio: the emulated downlink; None: images are answered at once (no radio).
        scenario: a scenario name or TOML file (``profiles/scenarios``); settings not given here
            come from it: ``w_latency``/``w_energy`` (``[utility]``), ``slot_s``/``frame_slots``
            (``[timing]``), ``cache_models`` (``[cluster]``), ``model_rank`` (``[models]`` rank),
            ``radio`` and ``bandwidth_share`` (``[radio]``, its ``fixed_share``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    caching: Literal["none", "most-popular", "popular-spread", "lru", "random", "no-cache", "ddqn"] = "none"
    allocation: Literal[
        "router", "fixed-steps", "greedy-latency", "sqrt-band", "d3pg", "ddpg", "sac", "td3", "external"
    ] = "router"
    slot_s: float = Field(1.0, ge=0.01, le=3600.0)
    frame_slots: int = Field(10, ge=1, le=100_000)
    cache_models: int = Field(1, ge=0, le=1000)
    fixed_steps: int = Field(8, ge=1, le=10_000)
    step_candidates: tuple[int, ...] = Field((4, 8, 16, 32), min_length=1, max_length=64)
    cloud_agent: str = Field("cloud", pattern=_NAME.pattern)
    w_latency: float = Field(0.5, ge=0.0, le=MAX_WEIGHT)
    w_energy: float = Field(0.01, ge=0.0, le=MAX_WEIGHT)
    evaluator: str = ""
    max_cache_ops: int = Field(4, ge=1, le=256)
    ewma_alpha: float = Field(0.3, gt=0.0, le=1.0)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    model_rank: tuple[str, ...] = Field((), max_length=10_000)
    scenario: str = ""
    checkpoint: str = ""
    fine_tune: bool = False
    bandwidth_share: float = Field(0.5, gt=0.0, le=1.0)
    radio: RadioConfig | None = None

    @model_validator(mode="after")
    def _learned_needs_checkpoint(self) -> PolicyConfig:
        learned = [n for n in (self.caching, self.allocation) if n in (*LEARNED_CACHING, *LEARNED_ALLOCATION)]
        if self.fine_tune and not learned:
            raise ValueError("fine_tune: only learned policies (ddqn, d3pg, ddpg, sac, td3) can be fine-tuned")
        if not learned:
            return self
        if not self.checkpoint:
            raise ValueError(f"checkpoint: the learned policies {', '.join(learned)} need a trained run folder")
        trained = read_run(self.checkpoint, "checkpoint")  # what it trained (the networks load when the daemon starts)
        for kind, name in (("caching", self.caching), ("allocation", self.allocation)):
            if name in learned and trained.get(kind) != name:
                raise ValueError(f"checkpoint: {self.checkpoint} trained {kind} {trained.get(kind)!r}, not {name!r}")
        return self

    @model_validator(mode="before")
    @classmethod
    def _from_scenario(cls, values: object) -> object:
        if not isinstance(values, dict) or not values.get("scenario"):
            return values
        from profiles.scenario import ScenarioError, load_scenario

        try:
            sc = load_scenario(str(values["scenario"]))
        except (ScenarioError, OSError) as exc:
            raise ValueError(f"scenario: {exc}") from exc
        taken = {
            "w_latency": sc.utility.w_latency, "w_energy": sc.utility.w_energy, "slot_s": sc.timing.slot_s,
            "frame_slots": sc.timing.frame_slots, "cache_models": sc.cluster.cache_models,
            "model_rank": tuple(sc.models.order),
        }  # fmt: skip
        if sc.radio is not None:
            r = sc.radio
            taken["radio"] = {"bandwidth_hz": r.bandwidth_hz, "image_bytes": r.image_bytes, "min_share": r.min_share}
            taken["bandwidth_share"] = r.fixed_share
        return {**taken, **values}

    @field_validator("step_candidates")
    @classmethod
    def _steps(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(s < 1 or s > 10_000 for s in value):
            raise ValueError("each must be in 1..10000")
        return value


class OrchestratorConfig(BaseModel):
    """Everything the daemon needs to run.

    Attributes:
        listen: HOST:PORT of the Orchestrator gRPC API; port 0 picks a free one. Loopback by default.
        metrics_listen: HOST:PORT of the Prometheus ``/metrics`` endpoint; empty: none.
        agents: static agents, ``[[agents]]`` tables with ``name`` and ``address``.
        heartbeat_s: heartbeat interval assigned to agents, and the health-check period of static
            agents that do not register, seconds; an agent silent for 3 intervals is down.
        run_dir: folder that receives one SQLite file per run.
        telemetry_batch_size: samples per telemetry message asked of agents, 10..100.
        limits: the daemon's bounds.
        policy: the policy loop; absent: no policies (the router decides alone, nothing is cached).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    listen: str = "127.0.0.1:50051"
    metrics_listen: str = "127.0.0.1:9464"
    agents: tuple[StaticAgent, ...] = ()
    heartbeat_s: float = Field(2.0, ge=0.05, le=60.0)
    run_dir: Path = Path("runs")
    telemetry_batch_size: int = Field(10, ge=10, le=100)
    limits: Limits = Limits()
    policy: PolicyConfig | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return check_host_port(value)

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_listen(cls, value: str) -> str:
        return value and check_host_port(value)

    @model_validator(mode="after")
    def _unique_agents(self) -> OrchestratorConfig:
        names = [a.name for a in self.agents]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"agents: the name '{name}' appears more than once")
        if len(names) > self.limits.max_agents:
            raise ValueError(f"agents: {len(names)} static agents exceed limits.max_agents = {self.limits.max_agents}")
        if self.limits.default_deadline_s > self.limits.max_deadline_s:
            raise ValueError("limits.default_deadline_s: exceeds limits.max_deadline_s")
        return self

    @classmethod
    def load(cls, path: Path, **overrides: object) -> OrchestratorConfig:
        """Read ``[orchestrator]`` (or top-level) settings from a TOML file; ``overrides`` win.

        ``run_dir``, ``policy.evaluator`` and a ``policy.scenario`` file are relative to the file's folder.

        Raises:
            ConfigError: unreadable file, unknown key, wrong type or invalid value, naming the file
                and the setting (``agents.1.address``, ``limits.max_inflight_requests``, ...).
        """
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        values = dict(data.get("orchestrator", data))
        if "run_dir" in values and isinstance(values["run_dir"], str):
            values["run_dir"] = (path.parent / values["run_dir"]).resolve()
        policy = values.get("policy")
        if isinstance(policy, dict):
            for key in ("evaluator", "scenario"):  # a path (a scenario may be a name) is relative to the file
                value = policy.get(key)
                if isinstance(value, str) and value and (key == "evaluator" or value.endswith(".toml")):
                    policy = {**policy, key: str((path.parent / value).resolve())}
            values["policy"] = policy
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.build(**values)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc

    @classmethod
    def build(cls, **values: object) -> OrchestratorConfig:
        """Validate ``values``; raises ConfigError whose message names each bad setting."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(describe(exc)) from exc


def describe(exc: ValidationError) -> str:
    """One line per error: ``setting.path: message (got value)``."""
    lines = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:  # a check across settings: its message starts with the setting
            lines.append(message)
            continue
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        lines.append(f"{where}: {message} (got {error.get('input')!r})")
    return "; ".join(lines)
