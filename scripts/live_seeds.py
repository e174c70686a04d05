"""Live runs over several workload seeds, as one table: ``edgetb fidelity`` folders gathered by seed.

Each ``ROOT/**/fidelity.json`` (one ``edgetb fidelity --seed S`` run, one or more policies) adds its policies'
live and simulated summaries to workload seed S; a policy run twice on one seed is an error (which run counts
would be a choice), as are runs of different scenarios. Per policy: mean and Student-t 95 % interval over the
seeds of the live figures, the simulator's utility on the same workloads and the sim - live gap (per seed, relative
to live); then the per-seed live utility gain of ``--reference`` over every other policy (mean and 95 % interval of
the per-seed ratios - 1), the same gains in the simulator beside them. Only policies that ran on every seed count;
the others are listed (``left_out``).

    python scripts/live_seeds.py results/live/seeds-2026-12-07 --reference ddqn+d3pg --out summary.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from orchestrator.report_t2drl import aggregate, gain, interval
from orchestrator.report_t2drl import format_interval as _pm

FIGURES = ("utility", "hit_ratio", "mean_latency_s", "failed_share")


def gather(root: Path) -> dict[int, dict[str, dict]]:
    """Per workload seed, per policy: the fidelity entry (``live``, ``sim``, ``gap``)."""
    seeds: dict[int, dict[str, dict]] = {}
    paths = sorted(root.rglob("fidelity.json"))
    if not paths:
        raise SystemExit(f"{root}: no fidelity.json below it")
    scenarios: dict[str, Path] = {}
    for path in paths:
        run = json.loads(path.read_text())
        scenarios.setdefault(str(run["scenario"]), path)
        if len(scenarios) > 1:
            (a, first), (b, _) = scenarios.items()
            raise SystemExit(f"{first} ran scenario {a}, {path} scenario {b}: one table holds one scenario")
        per_policy = seeds.setdefault(int(run["seed"]), {})
        for name, entry in run["policies"].items():
            if name in per_policy:
                raise SystemExit(f"{path}: {name} on workload seed {run['seed']} a second time")
            if entry.get("live") is None:
                raise SystemExit(f"{path}: {name} has no live run (--sim-only?)")
            per_policy[name] = entry
    return seeds


def summarize(root: Path, reference: str) -> dict:
    """The table and the reference's gains (see the module docstring)."""
    seeds = gather(root)
    names = set.intersection(*(set(p) for p in seeds.values()))
    if reference not in names:
        raise SystemExit(f"--reference: {reference} did not run on every workload seed (ran on all: {sorted(names)})")
    runs = {
        side: [{"seed": s, "policies": {n: seeds[s][n][side] for n in names}} for s in sorted(seeds)]
        for side in ("live", "sim")
    }
    live, sim = aggregate(runs["live"]), aggregate(runs["sim"])
    policies = {
        name: {
            **{f"live_{key}": live[name][key] for key in FIGURES},
            "sim_utility": sim[name]["utility"],
            "sim_minus_live_utility": interval(
                [sim[name]["per_seed_utility"][s] / live[name]["per_seed_utility"][s] - 1 for s in sorted(seeds)]
            ),
            "per_seed_live_utility": live[name]["per_seed_utility"],
            "per_seed_sim_utility": sim[name]["per_seed_utility"],
        }
        for name in sorted(names, key=lambda n: -live[n]["utility"][0])  # type: ignore[index]
    }
    gains = {
        other: {"live": gain(live, reference, other), "sim": gain(sim, reference, other)}
        for other in policies
        if other != reference
    }
    left_out = sorted(set.union(*(set(p) for p in seeds.values())) - names)
    return {"root": str(root), "workload_seeds": sorted(seeds), "reference": reference, "policies": policies,
            "gains": gains, "left_out": left_out}  # fmt: skip


def print_summary(summary: dict) -> None:
    print(f"workload seeds {summary['workload_seeds']} (mean ± 95 % interval over them)")
    header = ("policy", "live utility", "hit ratio", "latency ms", "failed %", "sim", "sim - live %")
    print("{:32s} {:>18s} {:>16s} {:>14s} {:>12s} {:>8s} {:>14s}".format(*header))
    for name, row in summary["policies"].items():
        print(f"{name:32s} {_pm(row['live_utility']):>18s} {_pm(row['live_hit_ratio'], digits=3):>16s} "
              f"{_pm(row['live_mean_latency_s'], 1e3, 0):>14s} {_pm(row['live_failed_share'], 100, 2):>12s} "
              f"{row['sim_utility'][0]:8.4f} {_pm(row['sim_minus_live_utility'], 100, 1):>14s}")  # fmt: skip
    if summary["left_out"]:
        print(f"left out (not run on every workload seed): {', '.join(summary['left_out'])}")
    print(f"gain of {summary['reference']}, per seed (live | sim):")
    for other, pair in summary["gains"].items():
        print(f"  over {other:30s} {_pm(pair['live'], 100, 2)} % | {_pm(pair['sim'], 100, 2)} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder with edgetb fidelity runs below it")
    parser.add_argument("--reference", default="ddqn+d3pg", help="policy whose gains are reported")
    parser.add_argument("--out", type=Path, help="write the summary as JSON here")
    args = parser.parse_args()
    summary = summarize(args.root, args.reference)
    print_summary(summary)
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
