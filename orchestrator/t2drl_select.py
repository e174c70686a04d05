"""Pick the policy to ship out of several T2DRL training runs: the best on validation workloads.

Training seeds differ by a few percent in held-out utility (``results/t2drl/``), so which run the
daemon and ``edgetb demo`` load is a model-selection step, done here by rule instead of by hand:
every run's learned pair replays the same *validation* workloads in the simulator (their own seeds,
``VALIDATION_SEED`` + i: apart from the training workloads, below ``TRAIN_SEED_BOUND``, from the
held-out evaluation of every training seed, ``EVAL_SEED`` + 1000 seed + i, and from the scenario's
live workload, seed 0), and the run with the highest mean utility per request is copied to the
output folder with ``selection.json`` beside it (every run's score, the seeds, the rule). The
seed-averaged results report every run; the live figures are measured on a workload the rule never saw.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from orchestrator.envs.t2drl import SimBackend
from orchestrator.policies import build_policies
from orchestrator.run_folder import read_run, run_scenario, spec_differences
from orchestrator.t2drl import evaluate

VALIDATION_SEED = 3_000_000
"""first workload seed of the validation workloads"""
SHIPPED_FILES = ("result.json", "caching.pt", "allocation.pt", "learning_curve.png")
"""what a run folder holds that the shipped policy needs (the curve: for the record)"""


def validation_seeds(episodes: int) -> list[int]:
    """Workload seeds of the validation replay: ``VALIDATION_SEED + i``."""
    return [VALIDATION_SEED + i for i in range(episodes)]


def _run_info(run: Path) -> dict:
    keys = ("algo", "caching", "allocation", "scenario", "device", "seed")
    result = read_run(run, "runs", keys)
    return {**{k: result[k] for k in keys}, "spec": run_scenario(result, "runs", run)}


def score_runs(runs: Sequence[Path], episodes: int = 5, slots: int = 300) -> dict[str, float]:
    """Mean utility per request of each run's learned pair on the validation workloads (simulated).

    Raises:
        ValueError: no runs, a folder that is not a T2DRL run, or runs of different algorithms,
            scenarios or devices (the message names the field).
    """
    if not runs:
        raise ValueError("runs: give at least one `edgetb train --env t2drl` output folder")
    if episodes < 1 or slots < 1:
        raise ValueError(f"episodes, slots: {episodes}, {slots} must be >= 1")
    infos = {str(run): _run_info(Path(run)) for run in runs}
    first = next(iter(infos.values()))
    for name, info in infos.items():
        for field in ("algo", "scenario", "device"):
            if info[field] != first[field]:
                raise ValueError(f"runs: {name} has {field} {info[field]!r}, the first run {first[field]!r}")
        if differ := spec_differences(info["spec"], first["spec"]):
            raise ValueError(
                f"runs: {name} trained on another {info['scenario']!r} than the first run (scenario_spec: "
                f"{', '.join(differ)})"
            )
    if first["caching"] != "ddqn":
        raise ValueError(f"runs: algo {first['algo']!r} learns no caching policy to select (caching 'ddqn' needed)")
    backend = SimBackend.from_scenario(first["spec"], first["device"])
    fixed = backend.policy.fixed_steps
    pairs = {  # a learned allocation from the run, or the rule it trained with (``ddqn+sqrt-band``)
        name: build_policies(info["caching"], info["allocation"], checkpoint=name, fixed_steps=fixed)
        for name, info in infos.items()
    }
    summaries = evaluate(backend, pairs, validation_seeds(episodes), slots)  # type: ignore[arg-type]
    return {name: float(summary["utility"]) for name, summary in summaries.items()}  # type: ignore[arg-type]


def select_policy(
    runs: Sequence[Path], out: Path, episodes: int = 5, slots: int = 300, log: Callable[[str], None] = lambda _: None
) -> dict[str, object]:
    """Copy the best-scoring run of ``runs`` (:func:`score_runs`) to ``out``; returns ``selection.json``'s content."""
    scores = score_runs(runs, episodes, slots)
    best = max(scores, key=lambda name: (scores[name], name))
    for name, value in sorted(scores.items(), key=lambda kv: -kv[1]):
        log(f"{name}: {value:.4f}{'  <- selected' if name == best else ''}")
    out.mkdir(parents=True, exist_ok=True)
    for file in SHIPPED_FILES:
        if (Path(best) / file).exists():
            shutil.copyfile(Path(best) / file, out / file)
    selection = {
        "rule": "highest mean utility per request on the validation workloads (simulator)",
        "selected": best, "seed": _run_info(Path(best))["seed"], "scores": scores,
        "validation_seeds": validation_seeds(episodes), "slots": slots,
    }  # fmt: skip
    (out / "selection.json").write_text(json.dumps(selection, indent=2) + "\n")
    return selection
