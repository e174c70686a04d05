"""Seed-averaged T2DRL results: a table (mean and 95 % interval over seeds) and learning curves.

``edgetb report DIR`` calls :func:`draw_t2drl_report` when ``result.json`` files of ``edgetb train
--env t2drl`` runs lie under ``DIR`` (one folder per algorithm and seed). Each run evaluated its
learned policies and the heuristic baselines on the same held-out workloads of its seed, so the
comparison is paired per seed; across seeds the table gives the mean and the Student-t 95 % interval.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from orchestrator.run_folder import run_scenario, spec_differences
from orchestrator.t2drl import ALGOS
from profiles.scenario import Scenario

BOUND = "upper bound"
"""the name of the hindsight bound among the rows"""
#: two-sided 97.5 % Student-t quantiles by degrees of freedom (n - 1), for the 95 % interval
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


#: What every run of one report shares: its rows pair the seeds' figures on the same held-out workloads.
SHARED = ("device", "eval_episodes", "eval_slots")


def find_runs(directory: Path) -> list[dict]:
    """Every T2DRL ``result.json`` under ``directory`` (``algo`` one of ``ALGOS``), with its path.

    Raises:
        ValueError: a file is not JSON; or the runs cannot be averaged together (:func:`check_comparable`).
    """
    runs = []
    for path in sorted(Path(directory).rglob("result.json")):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not readable JSON ({exc})") from exc
        if isinstance(result, dict) and result.get("algo") in ALGOS and "policies" in result:
            runs.append({**result, "path": str(path)})
    check_comparable(runs)
    return runs


def check_comparable(runs: list[dict]) -> None:
    """Refuse runs one table cannot hold: two runs of one algorithm and seed (one would be dropped), or runs
    trained on different scenarios or evaluated on other devices or workload sizes (their rows would mix problems).

    Raises:
        ValueError: naming both runs and what they differ in.
    """
    by_key: dict[tuple[str, int], str] = {}
    for run in runs:
        key = (str(run["algo"]), int(run["seed"]))
        if key in by_key:
            raise ValueError(
                f"{_folder(by_key[key])} and {_folder(run['path'])}: two {key[0]} runs of seed {key[1]}; a report "
                "averages one run per algorithm and seed: put the variants in separate folders"
            )
        by_key[key] = run["path"]
    if not runs:
        return
    first, first_scenario = runs[0], _scenario(runs[0])
    for run in runs[1:]:
        differ = [field for field in SHARED if run.get(field) != first.get(field)]
        scenario = _scenario(run)
        if first_scenario is not None and scenario is not None:
            differ += [f"scenario {d}" for d in spec_differences(first_scenario, scenario)]
        elif run.get("scenario") != first.get("scenario"):  # an older run of an unshipped scenario: its name only
            differ.append("scenario name")
        if differ:
            raise ValueError(
                f"{_folder(first['path'])} and {_folder(run['path'])}: the runs differ in {', '.join(differ)}; a "
                "report compares runs of one scenario evaluated alike: put them in separate folders"
            )


def _folder(result_path: str) -> Path:
    return Path(result_path).parent


def _scenario(run: dict) -> Scenario | None:
    """The scenario a run trained on (recorded ``scenario_spec``, else the shipped one of its name); None for an
    older run of a scenario that is not shipped."""
    try:
        return run_scenario(run, "runs", run["path"])
    except ValueError:
        return None


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its Student-t 95 % interval (0 for one value)."""
    x = np.asarray(values, np.float64)
    if len(x) < 2:
        return float(x.mean()), 0.0
    t = T975.get(len(x) - 1, 1.96)
    return float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(len(x)))


def aggregate(runs: list[dict]) -> dict[str, dict[str, object]]:
    """Per policy (learned variants by algo name, baselines by name): seeds and per-seed figures.

    A baseline appears in every run; its figures per seed are taken once per seed.
    """
    table: dict[str, dict[int, dict]] = defaultdict(dict)
    for run in runs:
        seed = int(run["seed"])
        for name, summary in run["policies"].items():
            table[name].setdefault(seed, summary)
    out: dict[str, dict[str, object]] = {}
    for name, per_seed in table.items():
        seeds = sorted(per_seed)
        row: dict[str, object] = {"seeds": seeds}
        for s in seeds:  # share of requests that failed (e.g. their downlink missed the deadline)
            summary = per_seed[s]
            summary.setdefault("failed_share", summary.get("failed_requests", 0) / max(summary.get("requests", 0), 1))
        for key in ("utility", "hit_ratio", "mean_latency_s", "mean_quality", "mean_downlink_s", "failed_share"):
            values = [float(per_seed[s][key]) for s in seeds if per_seed[s].get(key) is not None]
            row[key] = interval(values) if values else None
        row["per_seed_utility"] = {s: float(per_seed[s]["utility"]) for s in seeds}
        out[name] = row
    return out


def gain(rows: dict[str, dict[str, object]], ours: str, other: str) -> tuple[float, float] | None:
    """Relative utility gain of ``ours`` over ``other``: mean and 95 % interval of the per-seed ratios - 1."""
    a, b = rows.get(ours), rows.get(other)
    if a is None or b is None:
        return None
    ua, ub = a["per_seed_utility"], b["per_seed_utility"]  # type: ignore[index]
    seeds = sorted(set(ua) & set(ub))  # type: ignore[arg-type]
    ratios = [ua[s] / ub[s] - 1.0 for s in seeds if ub[s] > 0]  # type: ignore[index]
    return interval(ratios) if ratios else None


def format_interval(value: object, scale: float = 1.0, digits: int = 4) -> str:
    """``(mean, half-width)`` as ``mean ± half`` times ``scale`` ("n/a" for None)."""
    if value is None:
        return "n/a"
    mean, half = value  # type: ignore[misc]
    return f"{mean * scale:.{digits}f} ± {half * scale:.{digits}f}"


def results_table(runs: list[dict], path: Path) -> Path:
    """Markdown: every policy's utility, hit ratio, latency and quality (mean ± 95 % interval over seeds)."""
    rows = aggregate(runs)
    first = runs[0]
    learned = [a for a in ALGOS if a in rows]
    lines = [
        "# T2DRL: seed-averaged results (simulator)",
        "",
        f"Scenario `{first['scenario']}` on `{first['device']}` profiles; per seed, every policy replays the same "
        f"{first['eval_episodes']} held-out workloads of {first['eval_slots']} slots. Mean ± Student-t 95 % "
        "interval over the seeds.",
        "",
        "| policy | seeds | utility per request | edge hit ratio | mean latency (ms) | of it downlink (ms) | "
        "failed | mean quality |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in learned + sorted(n for n in rows if n not in learned):
        row, fmt = rows[name], format_interval
        lines.append(
            f"| {name} | {len(row['seeds'])} | {fmt(row['utility'])} | {fmt(row['hit_ratio'], digits=3)} | "  # type: ignore[arg-type]
            f"{fmt(row['mean_latency_s'], 1e3, 1)} | {fmt(row['mean_downlink_s'], 1e3, 1)} | "
            f"{fmt(row['failed_share'], 100, 2)} % | {fmt(row['mean_quality'], digits=3)} |"
        )
    if "t2drl" in rows:
        lines += ["", "Utility gain of t2drl (per-seed ratio − 1, mean ± 95 % interval):", ""]
        for other in [n for n in rows if n != "t2drl"]:
            g = gain(rows, "t2drl", other)
            if g is not None:
                lines.append(f"- over {other}: {g[0] * 100:+.2f} % ± {g[1] * 100:.2f} %")
    lines += bound_lines(runs, rows)
    path.write_text("\n".join(lines) + "\n")
    return path


def bound_lines(runs: list[dict], rows: dict[str, dict[str, object]]) -> list[str]:
    """The hindsight upper bounds of the runs that hold them (``result.json`` ``bound``: ``utility``, and
    ``cached_utility`` where every such run has it): the mean, the most any policy could gain over each, and the
    share of the room above random caching that t2drl takes."""
    bounded = [r for r in runs if r.get("bound")]
    if not bounded:
        return []
    lines = _one_bound_lines(bounded, rows, "utility", "model", "Upper bound on the same workloads")
    if all("cached_utility" in r["bound"] for r in bounded):
        lines += _one_bound_lines(bounded, rows, "cached_utility", "cached_model", "Upper bound keeping the cache size")
    return lines


def _one_bound_lines(
    runs: list[dict], rows: dict[str, dict[str, object]], key: str, model: str, title: str
) -> list[str]:
    """The lines of one bound (``bound[key]``, described by ``bound[model]``) of ``runs``, all of which hold it."""
    per_seed = {int(r["seed"]): float(r["bound"][key]) for r in runs}
    mean, half = interval(list(per_seed.values()))
    lines = [
        "",
        f"{title} ({runs[0]['bound'][model]}; no policy exceeds it): "
        f"{mean:.4f} ± {half:.4f} per request. The most any policy could gain (per-seed bound / policy − 1):",
        "",
    ]
    with_bound = {**rows, BOUND: {"per_seed_utility": per_seed}}
    for name in rows:
        g = gain(with_bound, BOUND, name)
        if g is not None:
            lines.append(f"- over {name}: {g[0] * 100:+.2f} % ± {g[1] * 100:.2f} %")
    base = rows.get("random+fixed-steps")
    if "t2drl" in rows and base is not None:
        ours, theirs = rows["t2drl"]["per_seed_utility"], base["per_seed_utility"]  # type: ignore[index]
        seeds = sorted(set(ours) & set(theirs) & set(per_seed))  # type: ignore[arg-type]
        taken = [(ours[s] - theirs[s]) / (per_seed[s] - theirs[s]) for s in seeds if per_seed[s] > theirs[s]]  # type: ignore[index]
        if taken:
            m, h = interval(taken)
            lines += ["", f"t2drl takes {m * 100:.1f} % ± {h * 100:.1f} % of the room between random+fixed-steps and "
                      "this bound."]  # fmt: skip
    return lines


def curves_figure(runs: list[dict], path: Path) -> Path:
    """Training curves: utility and hit ratio per training request, mean over seeds (band: min–max)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    by_algo: dict[str, list[list[dict]]] = defaultdict(list)
    for run in runs:
        by_algo[run["algo"]].append([r for r in run["curve"] if r.get("utility") is not None])
    for algo, curves in sorted(by_algo.items()):
        length = min(len(c) for c in curves)
        if length == 0:
            continue
        x = np.mean([[r["requests"] for r in c[:length]] for c in curves], axis=0)
        for ax, key in zip(axes, ("utility", "hit_ratio"), strict=True):
            y = np.array([[r[key] for r in c[:length]] for c in curves], np.float64)
            (line,) = ax.plot(x, y.mean(axis=0), label=f"{algo} ({len(curves)} seeds)")
            ax.fill_between(x, y.min(axis=0), y.max(axis=0), color=line.get_color(), alpha=0.2)
    axes[0].set(xlabel="training requests", ylabel="utility per request (training, incl. exploration)")
    axes[1].set(xlabel="training requests", ylabel="edge hit ratio (training)")
    axes[0].legend(loc="lower right")
    fig.suptitle("T2DRL training curves in the simulator: mean over seeds, band min–max")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def draw_t2drl_report(directory: Path, out: Path) -> list[Path]:
    """``t2drl_results.md`` and ``t2drl_curves.png`` for the runs under ``directory``; [] when there are none."""
    runs = find_runs(directory)
    if not runs:
        return []
    out.mkdir(parents=True, exist_ok=True)
    return [results_table(runs, out / "t2drl_results.md"), curves_figure(runs, out / "t2drl_curves.png")]
