"""Train a continuous-action learner on the water-filling sanity problem and score it on held-out draws.

``train_waterfill("d3pg", channels=10, seed=0, out=Path("runs/wf"))`` trains under a wall-time budget,
then acts deterministically on ``eval_draws`` channel draws from a separate seed (the same draws for
every algorithm and training seed) and writes into ``out``:

- ``result.json``: ``optimality_ratio`` = mean achieved sum rate / mean water-filling sum rate on those
  draws, ``uniform_ratio`` (equal power), the mean rates, train steps, updates, wall time, the act
  latency at batch 1, the algorithm's config, seeds, and the learning curve;
- ``curve.csv`` and ``learning_curve.png``: the validation optimality ratio (on ``curve_draws`` other
  held-out draws) against training steps;
- the checkpoint: ``agent.pt`` (d3pg, ddpg: ``<Agent>.load``) or ``agent.zip`` (sac, td3: ``sb3.load``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orchestrator.envs.waterfill import WaterfillEnv

ALGOS = ("d3pg", "ddpg", "sac", "td3")
EVAL_SEED = 1_000_003
"""seed of the held-out test draws (the curve's validation draws use ``EVAL_SEED + 1``)"""


def make_config(algo: str, seed: int, steps: int | None, overrides: dict[str, Any] | None = None):
    """The algorithm's ``Config`` with ``seed``, ``total_steps`` (if given) and ``overrides`` applied."""
    if algo == "d3pg":
        from orchestrator.algos.d3pg import Config
    elif algo == "ddpg":
        from orchestrator.algos.ddpg import Config
    elif algo in ("sac", "td3"):
        from orchestrator.algos.sb3 import Config
    else:
        raise ValueError(f"algo: {algo!r} is not one of {ALGOS}")
    fields = {"seed": seed, **({"total_steps": steps} if steps is not None else {}), **(overrides or {})}
    if algo in ("sac", "td3"):
        fields["algo"] = algo
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"config: {algo} has no field(s) {', '.join(unknown)}")
    return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def _act_latency_ms(act: Callable[[np.ndarray], np.ndarray], obs: np.ndarray, calls: int = 300) -> dict[str, float]:
    for o in obs[:20]:
        act(o)
    times = []
    for i in range(calls):
        t0 = time.perf_counter()
        act(obs[i % len(obs)])
        times.append(time.perf_counter() - t0)
    return {"p50": float(np.percentile(times, 50) * 1e3), "p99": float(np.percentile(times, 99) * 1e3)}


def train_waterfill(
    algo: str,
    channels: int,
    seed: int,
    out: Path,
    time_budget_s: float = 600.0,
    steps: int | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    total_power: float = 3.0,
    amender: str = "abs",
    eval_draws: int = 1000,
    curve_draws: int = 200,
    curve_every: int = 2_000,
    threads: int = 1,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Train ``algo`` on ``WaterfillEnv(channels)`` and write result.json, curve.csv, the plot and a checkpoint.

    Args:
        algo: "d3pg", "ddpg", "sac" or "td3".
        channels: number of channels N.
        seed: training seed (algorithm and env).
        out: output folder (created).
        time_budget_s: wall-time budget of the training, s.
        steps: environment steps at most (default: the algorithm's ``Config.total_steps``).
        overrides: further ``Config`` fields of the algorithm.
        total_power: the power budget P_T.
        amender: the env's action-to-power map, "abs" or "shift".
        eval_draws: held-out test draws (seed ``EVAL_SEED``).
        curve_draws: validation draws of the learning curve (seed ``EVAL_SEED + 1``).
        curve_every: environment steps between learning-curve points.
        threads: torch intra-op threads during training and evaluation.
        log: called with one line per learning-curve point.

    Returns:
        The content of result.json.
    """
    if algo not in ALGOS:
        raise ValueError(f"algo: {algo!r} is not one of {ALGOS}")
    cfg = make_config(algo, seed, steps, overrides)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        env = WaterfillEnv(channels, total_power, amender=amender)
        test_gains = env.sample_gains(np.random.default_rng(EVAL_SEED), eval_draws)
        curve_gains = env.sample_gains(np.random.default_rng(EVAL_SEED + 1), curve_draws)

        def deterministic(agent) -> Callable[[np.ndarray], np.ndarray]:
            if algo in ("sac", "td3"):
                from orchestrator.algos import sb3

                return lambda obs: sb3.act(agent, obs, deterministic=True)
            return lambda obs: agent.act(obs, deterministic=True)

        def on_curve(step: int, agent) -> dict:
            ratio = env.evaluate(deterministic(agent), curve_gains)["optimality_ratio"]
            if log is not None:
                log(f"{algo} step {step}: validation optimality ratio {ratio:.4f}")
            return {"val_optimality_ratio": ratio}

        if algo == "d3pg":
            from orchestrator.algos import d3pg as module
        elif algo == "ddpg":
            from orchestrator.algos import ddpg as module
        else:
            from orchestrator.algos import sb3 as module
        agent, curve = module.train(
            cfg, env, time_budget_s=time_budget_s, callback=on_curve, callback_every=curve_every
        )
        train_wall_s = curve[-1]["wall_s"] if curve else 0.0
        if algo in ("sac", "td3"):
            module.save(agent, out / "agent.zip")
            checkpoint, train_steps, updates = "agent.zip", int(agent.num_timesteps), int(agent._n_updates)
        else:
            agent.save(out / "agent.pt")
            checkpoint, train_steps, updates = "agent.pt", agent.env_steps, agent.updates
        scores = env.evaluate(deterministic(agent), test_gains)
        latency = _act_latency_ms(deterministic(agent), test_gains)
    finally:
        torch.set_num_threads(previous_threads)

    result = {
        "env": "waterfill",
        "algo": algo,
        "channels": channels,
        "total_power": total_power,
        "amender": amender,
        "seed": seed,
        "eval_seed": EVAL_SEED,
        "eval_draws": eval_draws,
        **scores,
        "train_steps": train_steps,
        "updates": updates,
        "train_wall_s": train_wall_s,
        "time_budget_s": time_budget_s,
        "threads": threads,
        "act_latency_ms": latency,
        "checkpoint": checkpoint,
        "config": dataclasses.asdict(cfg),
        "curve": curve,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    _write_curve(out, curve, scores["uniform_ratio"], f"{algo}, N = {channels}, seed {seed}")
    return result


def _write_curve(out: Path, curve: list[dict], uniform_ratio: float, title: str) -> None:
    columns = ("step", "wall_s", "updates", "episode_return", "val_optimality_ratio")
    with open(out / "curve.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(curve)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    ax.plot([r["step"] for r in curve], [r.get("val_optimality_ratio") for r in curve], marker=".", label="policy")
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label="water-filling")
    ax.axhline(uniform_ratio, color="grey", lw=0.8, ls=":", label="uniform power")
    ax.set(xlabel="environment steps", ylabel="optimality ratio (validation)", title=title)
    ax.legend(loc="lower right")
    fig.savefig(out / "learning_curve.png", dpi=120)
    plt.close(fig)
