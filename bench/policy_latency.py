"""Decision latency of the trained policies on this CPU: p50/p99 per call, batch 1, in one run.

Measured side by side, each over the same observations:

* the D3PG actor (deterministic reverse chain) at I = 1..10 denoising steps, and the MLP DDPG actor;
* the DDQN's masked greedy action (the caching decision of a frame);
* the full allocation decision the daemon makes per request (``LearnedAllocation.allocate``: features
  from the ``ClusterView``, actor, action amender) and the caching plan (``LearnedCaching.plan``);
* SAC (Stable-Baselines3) ``predict`` on the water-filling observation, when SB3 is installed.

Networks come from a ``edgetb train --env t2drl`` run folder (``--t2drl DIR``) when given, else are
freshly initialised with the trainer's default sizes (latency does not depend on the weights).
Goal: D3PG act <= 2 ms p99 at the chosen denoising steps (the trainer's default, I = 5).
Run: ``python bench/policy_latency.py [--t2drl runs/t2drl/seed0] [--calls 2000] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from orchestrator.algos import d3pg, ddpg, ddqn
from orchestrator.envs.features import cache_configs
from orchestrator.envs.t2drl import AllocationEnv, CachingEnv, SimBackend
from orchestrator.policies.drl import LearnedAllocation, LearnedCaching, load_trained
from orchestrator.t2drl import T2DRLConfig, feature_layout

GOAL_P99_MS = 2.0


def timed(call: Callable[[int], object], calls: int, warmup: int = 50) -> tuple[float, float]:
    """p50 and p99 of ``call(i)``, ms."""
    for i in range(warmup):
        call(i)
    times = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        call(i)
        times[i] = time.perf_counter() - t0
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def observations(env, count: int, seed: int = 0) -> list[np.ndarray]:
    """Observations an env really produces (random actions), ``count`` of them."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    while len(out) < count:
        if hasattr(env.action_space, "n"):
            action = int(rng.integers(env.action_space.n))
        else:
            action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        obs, _, done, _, _ = env.step(action)
        if done:
            obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
        out.append(obs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t2drl", type=Path, help="edgetb train --env t2drl run folder (default: fresh networks)")
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per row")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backend = SimBackend.from_scenario("t2drl", "x86-cpu")
    cfg = T2DRLConfig()
    layout = feature_layout(backend, cfg)
    alloc_obs = observations(AllocationEnv(backend, band=layout.band_prior), 500)
    cache_obs = observations(CachingEnv(backend), 200)
    mask = np.ones(len(cache_configs(layout)), bool)

    trained = "all rows: fresh networks of the trainer's sizes"
    if args.t2drl is not None:
        caching, allocation = load_trained(args.t2drl, "ddqn", "d3pg")
        trained = f"allocate()/plan() rows: trained {args.t2drl}; the other rows: fresh networks of its sizes"
    else:
        caching, allocation = None, None
    sizes = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.allocation.items()}
    rows: list[tuple[str, float, float]] = []
    for steps in range(1, 11):
        actor = d3pg.D3PG(
            layout.allocation_obs_dim, layout.allocation_act_dim, d3pg.Config(**{**sizes, "denoise_steps": steps})
        )
        p50, p99 = timed(lambda i, a=actor: a.act(alloc_obs[i % len(alloc_obs)], deterministic=True), args.calls)
        rows.append(
            (f"D3PG act, I = {steps}" + ("  (default)" if steps == d3pg.Config.denoise_steps else ""), p50, p99)
        )
    ddpg_fields = {f.name for f in dataclasses.fields(ddpg.Config)}
    ddpg_sizes = {k: v for k, v in sizes.items() if k in ddpg_fields}
    plain = ddpg.DDPG(layout.allocation_obs_dim, layout.allocation_act_dim, ddpg.Config(**ddpg_sizes))
    rows.append(
        ("DDPG act", *timed(lambda i: plain.act(alloc_obs[i % len(alloc_obs)], deterministic=True), args.calls))
    )
    caching_sizes = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.caching.items()}
    q = ddqn.DDQN(layout.caching_obs_dim, len(mask), ddqn.Config(**caching_sizes))
    rows.append(("DDQN act (masked)", *timed(lambda i: q.act(cache_obs[i % len(cache_obs)], mask), args.calls)))

    # the whole per-request decision and the per-frame plan, as the daemon calls them
    if allocation is None:
        actor = d3pg.D3PG(layout.allocation_obs_dim, layout.allocation_act_dim, d3pg.Config(**sizes))
        allocation = LearnedAllocation(lambda o: actor.act(o, deterministic=True), layout)
        caching = LearnedCaching(lambda o, m: q.act(o, m), layout, backend.mem_bytes())
    episode = backend.episode(7)
    views = []
    while not episode.done and len(views) < 200:
        while episode.frame_due():
            episode.end_frame(caching.plan(episode.frame_view()))
        _, view, info = episode.request_view()
        views.append((view, info))
        choice = allocation.allocate(view, info)
        episode.allocate(choice)
    rows.append(
        (
            "allocate(): features + D3PG + amender",
            *timed(lambda i: allocation.allocate(*views[i % len(views)]), args.calls),
        )
    )
    rows.append(
        ("plan(): features + DDQN + mask", *timed(lambda i: caching.plan(views[i % len(views)][0]), args.calls))
    )

    try:
        from orchestrator.algos import sb3
        from orchestrator.envs.waterfill import WaterfillEnv

        env = WaterfillEnv(10)
        model = sb3.make(sb3.Config(algo="sac", learning_starts=10), env)
        gains = env.sample_gains(np.random.default_rng(0), 500)
        rows.append(
            (
                "SAC predict (SB3, waterfill N = 10)",
                *timed(lambda i: sb3.act(model, gains[i % len(gains)], deterministic=True), args.calls),
            )
        )
    except ImportError:
        rows.append(("SAC predict: Stable-Baselines3 not installed", float("nan"), float("nan")))

    cpu = platform.processor() or platform.machine()
    print(f"policy decision latency, batch 1, {args.calls} calls per row; {cpu}, torch {torch.__version__}, ")
    print(f"{args.threads} thread(s); {trained}")
    print(f"{'decision':44s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for name, p50, p99 in rows:
        print(f"{name:44s} {p50:8.3f} {p99:8.3f}")
    default = next(p99 for name, _, p99 in rows if name.endswith("(default)"))
    verdict = "meets" if default <= GOAL_P99_MS else "misses"
    print(
        f"D3PG at the default I = {d3pg.Config.denoise_steps}: p99 {default:.3f} ms {verdict} "
        f"the {GOAL_P99_MS:g} ms goal"
    )


if __name__ == "__main__":
    main()
