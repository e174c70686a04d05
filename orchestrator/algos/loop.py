"""The off-policy training loop shared by the continuous-action learners (DDPG, D3PG).

``run_continuous(agent, cfg, env, ...)`` takes an agent with ``act(obs)``, ``update(batch)``,
``updates`` and ``env_steps`` and a config with ``total_steps``, ``learning_starts``,
``buffer_size``, ``batch_size``, ``updates_per_step`` and ``seed``: uniformly random actions until
``learning_starts``, then the agent's exploring actions; every transition into a replay buffer;
``updates_per_step`` updates per environment step after that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from orchestrator.algos.replay import ReplayBuffer


def run_continuous(
    agent: Any,
    cfg: Any,
    env,
    *,
    time_budget_s: float | None = None,
    callback: Callable[[int, Any], dict | None] | None = None,
    callback_every: int = 1_000,
) -> list[dict]:
    """Train ``agent`` on a Gymnasium env with a Box action space (actions rescaled from [-1, 1] to its bounds).

    Args:
        agent: the learner (its actions live in [-1, 1]).
        cfg: its hyper-parameters (``total_steps`` environment steps at most).
        env: the environment (``reset``/``step``).
        time_budget_s: stop after this much wall time, s (checked every step).
        callback: called as ``callback(step, agent)`` every ``callback_every`` steps; a returned dict
            is merged into that step's history record.
        callback_every: environment steps between history records.

    Returns:
        The history: per record ``step``, ``wall_s``, ``updates``, the mean ``episode_return`` of the
        episodes ended since the previous record, and the callback's fields.
    """
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    low, high = env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)
    buffer = ReplayBuffer(obs_dim, act_dim, cfg.buffer_size, seed=cfg.seed)
    obs, _ = env.reset(seed=cfg.seed)
    start, history, returns, episode_return = time.perf_counter(), [], [], 0.0
    for step in range(1, cfg.total_steps + 1):
        if step <= cfg.learning_starts:
            action = np.random.uniform(-1.0, 1.0, act_dim).astype(np.float32)
        else:
            action = agent.act(obs)
        next_obs, reward, terminated, truncated, _ = env.step(low + (action + 1.0) * (high - low) / 2.0)
        buffer.add(obs, action, reward, next_obs, terminated)
        episode_return += float(reward)
        if terminated or truncated:
            returns.append(episode_return)
            obs, episode_return = env.reset()[0], 0.0
        else:
            obs = next_obs
        if step > cfg.learning_starts:
            for _ in range(cfg.updates_per_step):
                agent.update(buffer.sample(cfg.batch_size))
        agent.env_steps = step
        wall_s = time.perf_counter() - start
        out_of_time = time_budget_s is not None and wall_s >= time_budget_s
        if step % callback_every == 0 or out_of_time or step == cfg.total_steps:
            record = {"step": step, "wall_s": wall_s, "updates": agent.updates}
            record["episode_return"] = float(np.mean(returns)) if returns else None
            returns = []
            if callback is not None:
                record.update(callback(step, agent) or {})
            history.append(record)
        if out_of_time:
            break
    return history
