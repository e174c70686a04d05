"""The ``bench.json`` document: counts, throughput, latency, server-side times, energy per image,
idle baseline, windows and validity, software versions; and its short summary.

Nothing is invented: a figure the target did not report is ``null`` with a note, energy per image
is ``null`` (source ``unavailable``) unless every completed query carried an energy figure.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import platform
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.harness.runner import DROPPED, OK, BenchConfig, QueryRecord, RunResult
from orchestrator.harness.scenarios import OFFLINE, SERVER, SINGLE_STREAM
from orchestrator.harness.targets import IdleBaseline, TargetFacts
from orchestrator.harness.validity import check_stability, make_windows, verdict

SCHEMA = "edgetb.bench/1"
#: An issue later than its schedule by more than this counts as late (server scenario), s.
LATE_S = 0.010
_PACKAGES = ("edgetb", "numpy", "grpcio", "protobuf")


def _finite(value: float | None) -> float | None:
    """JSON has no inf/NaN: those become null."""
    return float(value) if value is not None and math.isfinite(value) else None


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def latency_summary(latencies_s: list[float]) -> dict[str, float | None]:
    """p50/p90/p99 (linear interpolation), mean and max, s; all null for no queries."""
    if not latencies_s:
        return dict.fromkeys(("p50", "p90", "p99", "mean", "max"))
    a = np.asarray(latencies_s, dtype=float)
    p50, p90, p99 = (float(v) for v in np.percentile(a, [50, 90, 99]))
    return {"p50": p50, "p90": p90, "p99": p99, "mean": float(a.mean()), "max": float(a.max())}


def _server_p50(ok: list[QueryRecord], name: str) -> float | None:
    """Median of a server-side time when every completed query reported it, else None."""
    values = [getattr(r.reply, name) for r in ok]
    if not values or any(v is None for v in values):
        return None
    return float(np.median(values))


def energy_summary(ok: list[QueryRecord], idle: IdleBaseline) -> dict[str, Any]:
    """Energy per image from the per-query measurements, and above the idle baseline where both exist."""
    images = sum(r.reply.images for r in ok)  # type: ignore[union-attr]
    missing = sum(r.reply.energy_j is None for r in ok)  # type: ignore[union-attr]
    if not ok or missing:
        note = "no completed queries" if not ok else f"{missing} of {len(ok)} responses carried no energy figure"
        return {
            "energy_j_per_image": None,
            "energy_source": "unavailable",
            "energy_note": note,
            "energy_above_idle_j_per_image": None,
            "energy_above_idle_note": "needs energy per image",
        }
    energy_j = sum(r.reply.energy_j for r in ok)  # type: ignore[union-attr, misc]
    source = "+".join(sorted({r.reply.energy_source for r in ok}))  # type: ignore[union-attr]
    out: dict[str, Any] = {
        "energy_j_per_image": energy_j / images,
        "energy_source": source,
        "energy_note": "sum of the per-query energy figures over the images completed",
    }
    computes = [r.reply.compute_time_s for r in ok]  # type: ignore[union-attr]
    if idle.power_w is None:
        above, note = None, f"no idle baseline: {idle.reason}"
    elif any(c is None for c in computes):
        above, note = None, "the target did not report compute_time_s for every query"
    else:
        above = (energy_j - idle.power_w * sum(computes)) / images  # type: ignore[arg-type]
        note = "(energy_j - idle_power_w * compute_time_s) summed over queries, per image"
    out.update(energy_above_idle_j_per_image=above, energy_above_idle_note=note)
    return out


def build_report(
    config: BenchConfig,
    address: str,
    protocol: str,
    facts: TargetFacts,
    idle: IdleBaseline,
    run: RunResult,
    num_classes: int,
    num_classes_note: str,
) -> dict[str, Any]:
    """The whole ``bench.json`` document (JSON-ready: no inf/NaN)."""
    records = run.records
    ok = [r for r in records if r.status == OK]
    failed = Counter(r.status for r in records if r.status not in (OK, DROPPED))
    dropped = sum(r.status == DROPPED for r in records)
    delays_s = [r.issued_s - r.scheduled_s for r in records if r.issued_s is not None]
    late = sum(d > LATE_S for d in delays_s)
    latencies = [r.latency_s for r in ok]
    images = sum(r.reply.images for r in ok)  # type: ignore[union-attr]
    duration_s = run.duration_s
    qps = len(ok) / duration_s if duration_s > 0 else None
    ips = images / duration_s if duration_s > 0 else None
    windows = make_windows([r.done_s for r in ok], latencies, config.windows)  # type: ignore[misc]
    stability = check_stability(windows)
    judged = verdict(stability, run.minimums_met, sum(failed.values()), dropped)
    latency = latency_summary(latencies)  # type: ignore[arg-type]
    metric = {
        SINGLE_STREAM: ("latency_s_p90", latency["p90"]),
        SERVER: ("throughput_queries_per_s", qps),
        OFFLINE: ("throughput_images_per_s", ips),
    }[config.scenario]
    return {
        "schema": SCHEMA,
        "scenario": config.scenario,
        "target": address,
        "protocol": protocol,
        "model": config.model,
        "steps": config.steps,
        "batch": config.batch,
        "seed": config.seed,
        "settings": {
            "rate_qps": config.rate_qps,
            "max_in_flight": 1 if config.scenario == SINGLE_STREAM else config.max_in_flight,
            **asdict(config.limits),
            "windows": config.windows,
            "timeout_s": config.timeout_s,
            "idle_s": config.idle_s,
            "warmup_queries": config.warmup_queries,
            "num_classes": num_classes,
            "num_classes_note": num_classes_note,
        },
        "server": asdict(facts),
        "started_unix_s": run.started_unix_s,
        "metric": {"name": metric[0], "value": _finite(metric[1])},
        "queries": {
            "issued": len(records),
            "completed": len(ok),
            "failed": dict(sorted(failed.items())),
            "failed_total": sum(failed.values()),
            "dropped": dropped,
            "late": late if config.scenario == SERVER else None,
            "images_completed": images,
        },
        "errors": run.errors,
        "duration_s": duration_s,
        "throughput": {"queries_per_s": _finite(qps), "images_per_s": _finite(ips)},
        "latency_s": latency,
        "latency_measured_from": "scheduled arrival" if config.scenario == SERVER else "issue",
        "issue_delay_s": (
            {"p50": float(np.median(delays_s)), "p99": float(np.percentile(delays_s, 99)), "late_above_s": LATE_S}
            if config.scenario == SERVER and delays_s
            else None
        ),
        "server_time_s": {
            "queue_p50": _server_p50(ok, "queue_time_s"),
            "compute_p50": _server_p50(ok, "compute_time_s"),
        },
        **energy_summary(ok, idle),
        "idle": {
            "power_w": idle.power_w,
            "source": idle.source,
            "samples": idle.samples,
            "duration_s": idle.duration_s,
            "reason": idle.reason,
        },
        "windows": [{**asdict(w), "throughput_qps": _finite(w.throughput_qps)} for w in windows],
        "validity": {
            "valid": judged.valid,
            "reason": judged.reason,
            "checks": judged.checks,
            "throughput_spread": _finite(stability.throughput_spread),
            "latency_p50_spread": _finite(stability.latency_spread),
        },
        "software": software_versions(),
    }


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _ms(value: float | None) -> str:
    return f"{1e3 * value:.2f}" if value is not None else "n/a"


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(figure, value) rows for the short table at the end of a run."""
    q, lat, thr, idle, val = (report[k] for k in ("queries", "latency_s", "throughput", "idle", "validity"))
    energy = report["energy_j_per_image"]
    above = report["energy_above_idle_j_per_image"]
    failed = ", ".join(f"{k} {v}" for k, v in q["failed"].items()) or "0"
    return [
        ("scenario", f"{report['scenario']} ({report['protocol']}, {report['model']}, {report['steps']} steps)"),
        ("queries", f"{q['issued']} issued, {q['completed']} completed, failed {failed}, dropped {q['dropped']}"),
        ("duration", f"{report['duration_s']:.2f} s"),
        ("throughput", f"{thr['queries_per_s'] or 0:.2f} queries/s, {thr['images_per_s'] or 0:.2f} images/s"),
        ("latency ms", f"p50 {_ms(lat['p50'])}, p90 {_ms(lat['p90'])}, p99 {_ms(lat['p99'])}, mean {_ms(lat['mean'])}"),
        (
            "idle power",
            f"{idle['power_w']:.3f} W ({idle['source']})"
            if idle["power_w"] is not None
            else f"unavailable: {idle['reason']}",
        ),
        (
            "energy/image",
            f"{energy:.4g} J ({report['energy_source']})"
            if energy is not None
            else f"unavailable: {report['energy_note']}",
        ),
        ("above idle", f"{above:.4g} J/image" if above is not None else "n/a"),
        ("valid", f"{'yes' if val['valid'] else 'NO'}: {val['reason']}"),
    ]
