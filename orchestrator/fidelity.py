"""Sim fidelity: one seeded workload, one fixed policy, run live on a local cluster and in the simulator.

The live run is :func:`orchestrator.live_demo.run_live_demo` (real agents, real ONNX, the daemon's
policy loop); the simulated run is :func:`orchestrator.sim.cluster.simulate` with samplers built
from the committed profiles ``profiles/models/<model>/profile-<device>.toml`` and the same
``[policy]`` table. Both are summarised by the same code; the gap of each figure is
``(sim - live) / live``. A figure the live run could not measure (energy on a machine without a
power source) has no gap: it is reported as unavailable, never as 0.

The simulated run of each policy starts its policy clock where the live daemon's stood when the
replay began, and its edge agents use the share of memory the live agents reported in use (a
learned caching policy sees free memory). Written: ``fidelity.json`` (settings, both summaries, gaps,
the 10 % goal verdicts) and the live run's own report under ``live/``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from orchestrator.cluster import CLOUD
from orchestrator.live_demo import (
    RequestResult,
    policy_configs,
    run_live_demo,
    shipped_checkpoint,
    summarize,
    with_slot_s,
)
from orchestrator.radio import downlink_of
from orchestrator.run_folder import scenario_differences, scenario_warning
from orchestrator.sim.cluster import SimSettings, simulate
from orchestrator.sim.estimate import power_under_load_w
from orchestrator.sim.sampler import ModelSampler
from orchestrator.workload import Workload
from profiles.devices import DEVICES_DIR, load_device
from profiles.profile import MODELS_DIR, load_profile
from profiles.scenario import load_scenario

#: The figures compared, as ``summarize`` names them.
FIGURES = ("mean_latency_s", "energy_j_per_request", "mean_quality", "hit_ratio", "utility")
#: The goal: every compared figure within this relative gap.
GOAL = 0.10


def device_power_w(device: str) -> float | None:
    """The device profile's power under load, W; None when ``device`` is not a device profile."""
    try:
        return power_under_load_w(load_device(device))
    except (ValueError, OSError):
        return None


MEM_OTHER_USED = (0.0, 0.5)
"""the range the simulator draws, per episode, the share of an agent's memory used by everything but
the models from (a live box's operating system and processes; this VM ~5 %, a Jetson's desktop more)"""


def device_settings(device: str) -> dict[str, Any]:
    """``SimSettings`` fields of what a ``device``'s telemetry reports: its memory, whether it measures
    power, its power at rest; none when ``device`` is not a device profile."""
    try:
        profile = load_device(device)
    except (ValueError, OSError):
        return {}
    idle_w = profile.sim.idle_power_w if profile.sim is not None else profile.power.idle_w
    return {
        "mem_total_bytes": profile.mem_total_bytes,
        "mem_other_used": MEM_OTHER_USED,
        "power_measured": profile.telemetry.power_source != "unavailable",
        "idle_power_w": idle_w,
    }


def live_mem_used_fraction(telemetry: Path, policy: str) -> float | None:
    """Mean share of memory in use on the edge agents of one live policy run (the demo's merged
    ``telemetry.sqlite``, rows tagged ``run_policy``); None when no row has both memory figures."""
    if not telemetry.exists():
        return None
    with contextlib.closing(sqlite3.connect(telemetry)) as db:
        row = db.execute(
            "SELECT AVG(CAST(mem_used_bytes AS REAL) / mem_total_bytes) FROM telemetry WHERE run_policy = ? "
            "AND agent != ? AND mem_used_bytes IS NOT NULL AND mem_total_bytes > 0",
            (policy, CLOUD),
        ).fetchone()
    return None if row is None or row[0] is None else min(max(float(row[0]), 0.0), 0.99)


def samplers_for(models: Sequence[str], device: str, models_dir: Path = MODELS_DIR) -> dict[str, ModelSampler]:
    """One sampler per model from its profile on ``device``; energy modeled from the device's power."""
    power_w = device_power_w(device)
    return {m: ModelSampler(load_profile(m, device, models_dir), power_w) for m in models}


def gap(live: float | None, sim: float | None) -> float | None:
    """``(sim - live) / |live|``; None when either is unavailable or live is 0."""
    if live is None or sim is None or live == 0:
        return None
    return (sim - live) / abs(live)


def compare(live: dict[str, object], sim: dict[str, object]) -> dict[str, object]:
    """Gaps per figure and the goal verdict over the figures both runs have."""
    gaps = {k: gap(live.get(k), sim.get(k)) for k in FIGURES}  # type: ignore[arg-type]
    judged = {k: abs(v) <= GOAL for k, v in gaps.items() if v is not None and k != "utility"}
    return {"gap": gaps, "within_goal": judged, "all_within_goal": bool(judged) and all(judged.values())}


def run_fidelity(
    out: Path,
    *,
    scenario: str = "t2drl",
    policies: Sequence[str] = ("most-popular+fixed-steps",),
    device: str = "x86-cpu",
    slots: int | None = None,
    seed: int | None = None,
    slot_s: float | None = None,
    live: bool = True,
    simulated: bool = False,
    settings: SimSettings | None = None,
    models_dir: Path = MODELS_DIR,
    checkpoint: Path | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, object]:
    """Run each policy live and simulated on the scenario's seeded workload; write ``fidelity.json``.

    Args:
        out: output folder.
        scenario: shipped scenario name or TOML path.
        policies: ``caching+allocation`` combinations.
        device: the device profile the live agents run on (its model profiles drive the simulator).
        slots, seed, slot_s: as ``edgetb demo``.
        live: False: the simulator only (no live figures, no gaps).
        simulated: the live agents run the ``simulated`` device of ``device``'s profile: real ONNX,
            compute time and energy drawn from the model profiles on that device (labelled).
        settings: the simulated cluster; default: the scenario's ``[cluster]`` hints.
        models_dir: where the model profiles are.
        checkpoint: the ``edgetb train --env t2drl`` run folder of learned policies (``ddqn``, ``d3pg``, ``ddpg``,
            ``sac``, ``td3``) for every policy; None: each policy's shipped run, as ``edgetb demo``
            (:func:`orchestrator.live_demo.shipped_checkpoint`), live and in the simulator alike. Each such
            policy's entry lists where the run's scenario differs from this one (``checkpoint_scenario_differs``).
        log: progress lines.
    """
    sc = with_slot_s(load_scenario(scenario), slot_s)
    workload = Workload.from_scenario(sc, seed)
    requests = workload.requests(slots)
    hints = sc.cluster
    settings = settings or SimSettings(
        edge_agents=hints.edge_agents, cloud_delay_ms=hints.cloud_delay_ms, seed=workload.seed,
        downlink=downlink_of(sc), **device_settings(device),
    )  # fmt: skip
    samplers = samplers_for(sc.models.names, device, models_dir)
    scenario_ref = str(Path(scenario).resolve()) if scenario.endswith(".toml") else scenario
    configs = policy_configs(policies, scenario_ref, sc.timing.slot_s, checkpoint)  # checked before any live run
    checkpoints = {name: checkpoint if checkpoint is not None else shipped_checkpoint(name) for name in policies}
    out.mkdir(parents=True, exist_ok=True)
    live_report: dict[str, object] = {}
    if live:
        log(f"live run of {', '.join(policies)} ...")
        sim_profile = DEVICES_DIR / f"{device}.toml" if simulated else None
        live_report = run_live_demo(
            out / "live", scenario=scenario, slots=slots, seed=seed, slot_s=slot_s, policies=policies, log=log,
            device="simulated" if simulated else "auto", sim_profile=sim_profile, models=models_dir,
            checkpoint=checkpoint,
        )  # fmt: skip
    result: dict[str, object] = {
        "scenario": sc.name, "seed": workload.seed, "requests": len(requests), "device": device,
        "live_agents": ("simulated " + device) if simulated else "real (this machine)",
        "goal_relative_gap": GOAL, "sim_settings": settings.__dict__,
        "sim_model": "orchestrator/sim/cluster.py (profiles: " + ", ".join(
            f"{m}: {s.profile.provenance.method}" for m, s in samplers.items()) + ")",
        "policies": {},
    }  # fmt: skip
    for name in policies:
        policy = configs[name]
        run_settings = settings
        if live:  # align the simulated policy clock with the live daemon's at the replay start
            clock_s = float(live_report["policies"][name]["policy_clock_s"])  # type: ignore[index]
            run_settings = replace(settings, policy_clock_s=clock_s)
            used = live_mem_used_fraction(out / "live" / "telemetry.sqlite", name)
            if used is not None and settings.mem_total_bytes is not None:  # the memory the live agents reported
                run_settings = replace(run_settings, mem_other_used=(used, used))
        sim_results: list[RequestResult] = simulate(requests, samplers, policy, run_settings)
        entry: dict[str, object] = {
            "checkpoint": str(checkpoints[name]) if checkpoints[name] is not None else None,
            "sim": summarize(sim_results), "sim_mem_other_used": run_settings.mem_other_used,
        }  # fmt: skip
        if checkpoints[name] is not None:
            entry["checkpoint_scenario_differs"] = differences = scenario_differences(checkpoints[name], sc)
            if not live and (warning := scenario_warning(checkpoints[name], sc, differences)) is not None:
                log(f"{name}: {warning}")  # live: the demo said it before its run
        if live:
            live_summary = live_report["policies"][name]  # type: ignore[index]
            entry["live"] = live_summary
            entry.update(compare(live_summary, entry["sim"]))  # type: ignore[arg-type]
        result["policies"][name] = entry  # type: ignore[index]
        if live:  # the simulator alone has no gaps to log
            log(f"{name}: " + ", ".join(f"{k} {v}" for k, v in entry["gap"].items()))  # type: ignore[attr-defined]
    (out / "fidelity.json").write_text(json.dumps(result, indent=2, default=str))
    return result
