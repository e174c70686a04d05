"""The live demo: every policy combination on a local cluster, replaying one seeded workload.

For each combination of :data:`POLICIES` a fresh :class:`~orchestrator.cluster.LocalCluster`
starts (the scenario's ``[cluster]`` hints: edge agents, cache size, cloud delay) with the daemon's
``[policy]`` table set to that combination. The scenario's workload (same seed: the identical
request list for every policy) is replayed in real time: each request is submitted at its
``arrival_s`` through :class:`~orchestrator.daemon_client.OrchestratorClient` from a bounded thread
pool, with the workload's deadline. Each served request is rated with the requesting user's own
weights (:func:`orchestrator.utility.request_utility`) from the quality the daemon returns. A failed
request counts with quality 0 and its elapsed time as latency.

Written to the output folder: ``report.json``, ``telemetry.sqlite`` (every run store merged, each
row tagged with its ``run_policy``), ``latency_cdf.png``, ``power_timeline.png`` and
``utility_per_slot.png``.
"""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
import numpy as np
from pydantic import ValidationError

from orchestrator.cluster import CLOUD, SHIPPED_MODELS, LocalCluster
from orchestrator.config import PolicyConfig, describe
from orchestrator.daemon_client import OrchestratorClient
from orchestrator.policies import LEARNED_ALLOCATION, LEARNED_CACHING
from orchestrator.run_folder import read_run, scenario_differences, scenario_warning
from orchestrator.utility import request_utility
from orchestrator.workload import Workload, WorkloadRequest
from profiles.scenario import Scenario, load_scenario

#: The policy combinations the demo runs, ``caching+allocation``, in order.
POLICIES: tuple[str, ...] = (
    "ddqn+d3pg",
    "ddqn+ddpg",
    "ddqn+sqrt-band",
    "popular-spread+sqrt-band",
    "popular-spread+fixed-steps",
    "random+fixed-steps",
    "most-popular+fixed-steps",
    "lru+fixed-steps",
    "no-cache+fixed-steps",
)
#: The shipped T2DRL run (DDQN caching + D3PG allocation trained in the simulator on the x86-cpu
#: profiles: ``make policies``) that learned policies load when no ``checkpoint`` is given.
SHIPPED_POLICY = SHIPPED_MODELS.parent / "policies" / "t2drl"
#: Shipped runs by policy name where another run than ``SHIPPED_POLICY`` trained it: the MLP-actor pair trained the
#: same way (``edgetb train --algo ddqn+ddpg``) and the DDQN trained around the square-root band rule
#: (``edgetb train --algo ddqn+sqrt-band``), both by ``make policies``.
SHIPPED_POLICIES = {
    "ddqn+ddpg": SHIPPED_MODELS.parent / "policies" / "ddqn-ddpg",
    "ddqn+sqrt-band": SHIPPED_MODELS.parent / "policies" / "ddqn-sqrt-band",
}
LEARNED = (*LEARNED_CACHING, *LEARNED_ALLOCATION)
#: Requests in flight at once per policy run.
MAX_IN_FLIGHT = 16
#: Extra time a request may take beyond its deadline before the client gives up, s.
CLIENT_GRACE_S = 5.0
#: Tables merged into ``telemetry.sqlite``.
TABLES = ("runs", "agents", "agent_events", "telemetry", "requests", "decisions", "rewards")
OK = "ok"
#: Images per policy in ``samples.png``.
SAMPLES = 10


@dataclass(frozen=True)
class RequestResult:
    """One replayed request as the client saw it.

    Attributes:
        id: workload request index.
        user: requesting user.
        slot: workload slot.
        model: requested model.
        outcome: ``ok`` or the gRPC status name (e.g. ``DEADLINE_EXCEEDED``).
        agent: serving agent ("" when failed).
        latency_s: client-measured time from submit to answer (or failure), s.
        lag_s: how late the submission was against ``arrival_s``, s.
        energy_j: energy of the request, J; None when unavailable.
        energy_source: where the energy figure came from.
        quality: per-image quality in [0, 1] returned by the daemon; None when not scored.
        steps: denoising steps used (0 when failed).
        hit: served by an edge agent that already had the model loaded.
        utility: the user's utility of this request.
        downlink_s: the modeled radio transmission of the image, s (in ``latency_s``; 0 without a radio
            and for failed requests).
        bandwidth_share: the share of the downlink band it got; None without a radio.
    """

    id: int
    user: int
    slot: int
    model: str
    outcome: str
    agent: str
    latency_s: float
    lag_s: float
    energy_j: float | None
    energy_source: str
    quality: float | None
    steps: int
    hit: bool
    utility: float
    downlink_s: float = 0.0
    bandwidth_share: float | None = None


def failed(
    req: WorkloadRequest, outcome: str, latency_s: float = 0.0, lag_s: float = 0.0, bandwidth_share: float | None = None
) -> RequestResult:
    """The result of a request that brought no image back (``outcome``: the gRPC status name, e.g. UNAVAILABLE
    when no agent could take it): zero quality, ``latency_s`` weighed against its user."""
    util = request_utility(0.0, latency_s, None, req.w_latency, req.w_energy, req.quality_floor)
    return RequestResult(
        req.id, req.user, req.slot, req.model, outcome, "", latency_s, lag_s, None, "unavailable", None, 0, False,
        util.value, 0.0, bandwidth_share,
    )  # fmt: skip


def with_slot_s(scenario: Scenario, slot_s: float | None) -> Scenario:
    """The scenario with another slot length, s (None: unchanged)."""
    if slot_s is None:
        return scenario
    return scenario.model_copy(update={"timing": scenario.timing.model_copy(update={"slot_s": float(slot_s)})})


def submit_one(
    client: OrchestratorClient, req: WorkloadRequest, lag_s: float, request_id: str
) -> tuple[RequestResult, np.ndarray | None]:
    """Submit one workload request now and wait for it; its result as the client saw it, and its image.

    Args:
        client: the daemon's client.
        req: the request.
        lag_s: how late the submission is against ``req.arrival_s``, s (recorded only).
        request_id: the id it is submitted under.
    """
    started_s = time.monotonic()
    try:
        routed = client.submit(
            req.model, req.label, deadline_s=req.deadline_s, seed=req.id, request_id=request_id, snr_db=req.snr_db,
            w_latency=req.w_latency, w_energy=req.w_energy,
        )  # fmt: skip
    except grpc.RpcError as exc:
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        outcome = code.name if code is not None else "ERROR"
        return failed(req, outcome, time.monotonic() - started_s, lag_s), None
    latency_s = time.monotonic() - started_s
    quality = routed.quality
    energy = routed.energy_j if routed.energy_j is not None and math.isfinite(routed.energy_j) else None
    util = request_utility(
        quality if quality is not None else 0.0, latency_s, energy, req.w_latency, req.w_energy, req.quality_floor
    )
    hit = routed.agent != CLOUD and not routed.loaded_model
    result = RequestResult(
        req.id, req.user, req.slot, req.model, OK, routed.agent, latency_s, lag_s, energy, routed.energy_source,
        quality, routed.steps, hit, util.value, routed.downlink_s, routed.bandwidth_share,
    )  # fmt: skip
    return result, routed.image


def replay(
    client: OrchestratorClient,
    requests: Sequence[WorkloadRequest],
    max_in_flight: int = MAX_IN_FLIGHT,
    samples: dict[int, np.ndarray] | None = None,
) -> list[RequestResult]:
    """Submit every request at its ``arrival_s`` (from now), at most ``max_in_flight`` at once.

    Args:
        client: the daemon's client.
        requests: the workload, in arrival order.
        max_in_flight: requests outstanding at once.
        samples: when given, receives the images [C, H, W] of the first :data:`SAMPLES` served
            requests, by request id.

    Returns:
        One result per request, in workload order.
    """
    slots = threading.BoundedSemaphore(max_in_flight)
    lock = threading.Lock()
    t0_s = time.monotonic()

    def one(req: WorkloadRequest) -> RequestResult:
        try:
            lag_s = max(0.0, time.monotonic() - t0_s - req.arrival_s)
            result, image = submit_one(client, req, lag_s, f"demo-{req.id}")
            if samples is not None and image is not None:
                with lock:
                    if len(samples) < SAMPLES:
                        samples[req.id] = image
            return result
        finally:
            slots.release()

    futures: list[Future[RequestResult]] = []
    with ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="demo-submit") as pool:
        for req in requests:
            wait_s = t0_s + req.arrival_s - time.monotonic()
            if wait_s > 0:
                time.sleep(wait_s)
            slots.acquire()
            futures.append(pool.submit(one, req))
    return [f.result() for f in futures]


def summarize(results: Sequence[RequestResult]) -> dict[str, object]:
    """The per-policy figures of ``report.json`` from its request results."""
    ok = [r for r in results if r.outcome == OK]
    n = len(results)
    latencies = np.array([r.latency_s for r in ok], dtype=np.float64)
    qualities = [r.quality if r.quality is not None else 0.0 for r in ok]
    energies = [r.energy_j for r in ok if r.energy_j is not None]
    sources = sorted({r.energy_source for r in ok})
    return {
        "requests": n,
        "failed_requests": n - len(ok),
        "outcomes": dict(Counter(r.outcome for r in results)),
        "utility": float(np.mean([r.utility for r in results])) if n else 0.0,
        "mean_quality": float(np.mean(qualities)) if ok else None,
        "mean_latency_s": float(latencies.mean()) if ok else None,
        "p99_latency_s": float(np.percentile(latencies, 99)) if ok else None,
        "energy_j_per_request": float(np.mean(energies)) if ok and len(energies) == len(ok) else None,
        "energy_sources": sources,
        "hit_ratio": sum(r.hit for r in results) / n if n else 0.0,
        "served_by": dict(Counter(r.agent for r in ok)),
        "mean_submit_lag_s": float(np.mean([r.lag_s for r in results])) if n else 0.0,
        "mean_downlink_s": float(np.mean([r.downlink_s for r in ok])) if ok else None,
    }


def merge_stores(stores: dict[str, Path], dest: Path) -> None:
    """Copy every table of each policy's run store into ``dest``, with a leading ``run_policy`` column."""
    dest.unlink(missing_ok=True)
    db = sqlite3.connect(dest)
    try:
        for policy, path in stores.items():
            db.execute("ATTACH DATABASE ? AS src", (str(path),))
            for table in TABLES:
                cols = [row[1] for row in db.execute(f"PRAGMA src.table_info({table})")]
                if not cols:
                    continue
                db.execute(f"CREATE TABLE IF NOT EXISTS main.{table} (run_policy TEXT, {', '.join(cols)})")
                db.execute(
                    f"INSERT INTO main.{table} (run_policy, {', '.join(cols)}) SELECT ?, {', '.join(cols)} "
                    f"FROM src.{table}",
                    (policy,),
                )
            db.commit()
            db.execute("DETACH DATABASE src")
    finally:
        db.close()


def _store_of(run_dir: Path) -> Path:
    stores = sorted(run_dir.glob("*.sqlite"), key=lambda p: p.stat().st_mtime)
    if not stores:
        raise RuntimeError(f"the daemon wrote no run store in {run_dir}")
    return stores[-1]


def shipped_checkpoint(name: str) -> Path | None:
    """The shipped run a ``caching+allocation`` policy loads its learners from (None: it has none to load)."""
    if not any(part in LEARNED for part in name.split("+")):
        return None
    return SHIPPED_POLICIES.get(name, SHIPPED_POLICY)


def policy_configs(
    policies: Sequence[str], scenario: str, slot_s: float, checkpoint: Path | None
) -> dict[str, PolicyConfig]:
    """Each ``caching+allocation`` name as the daemon's ``[policy]`` table, checked before any cluster starts
    (a learned policy's checkpoint too: it must have trained that learner).

    Args:
        policies: ``caching+allocation`` names.
        scenario: the scenario name or TOML path the daemons get.
        slot_s: slot length, s.
        checkpoint: the run of every learned policy; None: each one's shipped run (:func:`shipped_checkpoint`).

    Raises:
        ValueError: starting ``policies:`` and naming the policy and the bad part.
    """
    configs = {}
    for name in policies:
        caching, plus, allocation = name.partition("+")
        if not plus:
            raise ValueError(f"policies: {name!r} is not caching+allocation (e.g. ddqn+d3pg, random+fixed-steps)")
        run = checkpoint if checkpoint is not None else shipped_checkpoint(name)
        try:
            configs[name] = PolicyConfig(
                caching=caching, allocation=allocation, scenario=scenario, slot_s=slot_s, cloud_agent=CLOUD,
                checkpoint=str(Path(run).resolve()) if run is not None else "",
            )  # fmt: skip
        except ValidationError as exc:
            raise ValueError(f"policies: {name}: {describe(exc)}") from exc
    return configs


def default_policies(checkpoint: Path | None = None) -> tuple[str, ...]:
    """The policies a demo runs when none are named: :data:`POLICIES`, each learned pair with its shipped run.

    With ``checkpoint`` (one ``edgetb train --env t2drl`` run for every learned policy): the run's own pair first,
    then those of :data:`POLICIES` whose learned parts the run trained (a DDQN + D3PG run drops ``ddqn+ddpg``).

    Raises:
        ValueError: ``checkpoint`` has no readable ``result.json`` naming its learners.
    """
    if checkpoint is None:
        return POLICIES
    result = read_run(checkpoint, "checkpoint", ("caching", "allocation"))
    trained = (str(result["caching"]), str(result["allocation"]))

    def held(name: str) -> bool:
        parts = name.split("+")
        return all(part not in LEARNED or part == run_part for part, run_part in zip(parts, trained, strict=True))

    return tuple(dict.fromkeys(["+".join(trained), *(name for name in POLICIES if held(name))]))


def run_live_demo(
    out: Path,
    *,
    scenario: str = "t2drl",
    slots: int | None = None,
    seed: int | None = None,
    slot_s: float | None = None,
    policies: Sequence[str] = POLICIES,
    device: str = "auto",
    sim_profile: Path | None = None,
    models: Path = SHIPPED_MODELS,
    max_in_flight: int = MAX_IN_FLIGHT,
    checkpoint: Path | None = None,
    fine_tune: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, object]:
    """Run every policy combination live on the same seeded workload; write the report and figures.

    Args:
        out: output folder (created).
        scenario: shipped scenario name or scenario TOML path.
        slots: run length, slots; None: the scenario's ``timing.slots``.
        seed: workload seed; None: the scenario's.
        slot_s: slot length, s; None: the scenario's ``timing.slot_s``.
        policies: ``caching+allocation`` names.
        device: agents' device: ``auto``, ``cpu`` or ``simulated``.
        sim_profile: device profile TOML for ``simulated``.
        models: model repository.
        max_in_flight: requests in flight at once.
        checkpoint: the ``edgetb train --env t2drl`` run folder of learned policies (``ddqn``, ``d3pg``,
            ``ddpg``, ``sac``, ``td3``) for every policy; None: each policy's shipped run (:func:`shipped_checkpoint`).
            Where the run trained on another scenario (``--slot-s`` counts) the log says so and the report's
            policy entry lists the fields (``checkpoint_scenario_differs``; None: the run does not say).
        fine_tune: learned policies keep learning from the live rewards; each run writes its tuned
            learners to ``runs/<policy>/<run id>-tuned/``.
        log: progress lines.

    Returns:
        The report (also written to ``out/report.json``).
    """
    sc = with_slot_s(load_scenario(scenario), slot_s)
    workload = Workload.from_scenario(sc, seed)
    requests = workload.requests(slots)
    n_slots = sc.timing.slots if slots is None else int(slots)
    scenario_ref = str(Path(scenario).resolve()) if scenario.endswith(".toml") else scenario
    policy_configs(policies, scenario_ref, sc.timing.slot_s, checkpoint)  # every one, before any cluster starts
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = out / "runs"
    shutil.rmtree(runs_dir, ignore_errors=True)
    hints = sc.cluster
    report_policies: dict[str, dict[str, object]] = {}
    all_results: dict[str, list[RequestResult]] = {}
    stores: dict[str, Path] = {}
    samples: dict[str, np.ndarray] = {}
    agents: dict[str, str] = {}
    t_start = time.monotonic()
    for name in policies:
        caching, _, allocation = name.partition("+")
        run_dir = runs_dir / name
        policy_checkpoint = checkpoint if checkpoint is not None else shipped_checkpoint(name)
        trained_on: dict[str, object] = {}
        if policy_checkpoint is not None:
            differences = scenario_differences(policy_checkpoint, sc)
            trained_on["checkpoint_scenario_differs"] = differences
            if (warning := scenario_warning(policy_checkpoint, sc, differences)) is not None:
                log(f"{name}: {warning}")
        log(f"{name}: starting the cluster ...")
        cluster = LocalCluster(
            hints.edge_agents,
            policy={
                "caching": caching, "allocation": allocation, "scenario": scenario_ref,
                "slot_s": sc.timing.slot_s, "cloud_agent": CLOUD,
                **({"checkpoint": str(Path(policy_checkpoint).resolve())} if policy_checkpoint is not None else {}),
                **({"fine_tune": True} if fine_tune and any(p in LEARNED for p in (caching, allocation)) else {}),
            },
            models=models, device=device, sim_profile=sim_profile, cloud_delay_ms=hints.cloud_delay_ms,
            run_dir=run_dir,
        )  # fmt: skip
        with cluster:
            for view in cluster.status().agents:
                agents[view.name] = view.power_source
            log(f"{name}: replaying {len(requests)} requests over {n_slots} slots of {sc.timing.slot_s:g} s ...")
            with OrchestratorClient(
                cluster.daemon_address, timeout_s=sc.requests.deadline_s + CLIENT_GRACE_S
            ) as client:
                images: dict[int, np.ndarray] = {}
                policy_clock_s = cluster.status().uptime_s  # the policy loop's clock when the replay starts
                results = replay(client, requests, max_in_flight, images)
        if images:
            samples[name] = np.stack([images[i] for i in sorted(images)])
        stores[name] = _store_of(run_dir)
        all_results[name] = results
        report_policies[name] = {**summarize(results), "policy_clock_s": policy_clock_s, **trained_on}
        log(f"{name}: done, {report_policies[name]['failed_requests']} of {len(results)} failed")
    merge_stores(stores, out / "telemetry.sqlite")
    report: dict[str, object] = {
        "scenario": sc.name,
        "seed": workload.seed,
        "slots": n_slots,
        "slot_s": sc.timing.slot_s,
        "requests": len(requests),
        "failed_requests": sum(int(p["failed_requests"]) for p in report_policies.values()),  # type: ignore[call-overload]
        "agents": dict(agents),  # name -> power source label
        "cluster": {
            "edge_agents": hints.edge_agents,
            "cache_models": hints.cache_models,
            "cloud_delay_ms": hints.cloud_delay_ms,
            "device": device,
            "agents": list(agents),
        },
        "policies": report_policies,
        "wall_s": time.monotonic() - t_start,
        "per_request": {name: [asdict(r) for r in results] for name, results in all_results.items()},
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    from orchestrator.figures import latency_cdf, power_timeline, sample_grid, utility_per_slot

    if samples:
        sample_grid(samples, out / "samples.png")

    latency_cdf(
        {n: [r.latency_s for r in rs if r.outcome == OK] for n, rs in all_results.items()}, out / "latency_cdf.png"
    )
    utility_per_slot(
        {n: [(r.slot, r.utility) for r in rs] for n, rs in all_results.items()}, n_slots, out / "utility_per_slot.png"
    )
    power_timeline(out / "telemetry.sqlite", out / "power_timeline.png")
    return report
