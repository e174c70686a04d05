"""SAC and TD3 from Stable-Baselines3, as baselines on the same Gymnasium envs as D3PG and DDPG.

A thin wrapper: build the SB3 model from a ``Config``, train it under a step and wall-time budget
with a periodic callback (the same history records as ``ddpg.train``), act on single observations or
batches, save/load. Stable-Baselines3 is imported lazily, so the rest of ``orchestrator.algos`` works
without it; it comes with the ``rl`` extra (``pip install 'edgetb[rl]'``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ALGOS = ("sac", "td3")


@dataclass
class Config:
    """SB3 SAC/TD3 hyper-parameters (SB3's defaults unless set; ``kwargs`` reaches the constructor)."""

    algo: str = "sac"
    """which learner: "sac" or "td3\""""
    seed: int = 0
    """seed of the model, its replay buffer and the env"""
    total_steps: int = 200_000
    """environment steps to train for (``train`` may stop earlier on its time budget)"""
    learning_starts: int = 1_000
    """uniformly random actions before the first update"""
    buffer_size: int = 100_000
    """replay capacity, transitions"""
    batch_size: int = 256
    """transitions per update"""
    learning_rate: float = 3e-4
    """Adam learning rate of actor and critic"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """Polyak factor of the soft target updates"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden widths of actor and critic (SB3's ``net_arch``)"""
    action_noise: float = 0.1
    """TD3 only: std of the Gaussian exploration noise (actions in [-1, 1])"""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """further keyword arguments of the SB3 constructor"""


def _sb3():
    try:
        import stable_baselines3
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "orchestrator.algos.sb3 needs Stable-Baselines3: install the 'rl' extra (pip install 'edgetb[rl]')"
        ) from exc
    return stable_baselines3


def make(cfg: Config, env):
    """A fresh SB3 model (``SAC`` or ``TD3``) on ``env`` built from ``cfg``."""
    sb3 = _sb3()
    if cfg.algo not in ALGOS:
        raise ValueError(f"algo: {cfg.algo!r} is not one of {ALGOS}")
    kwargs: dict[str, Any] = dict(
        learning_rate=cfg.learning_rate,
        buffer_size=cfg.buffer_size,
        learning_starts=cfg.learning_starts,
        batch_size=cfg.batch_size,
        tau=cfg.tau,
        gamma=cfg.gamma,
        policy_kwargs={"net_arch": list(cfg.hidden)},
        seed=cfg.seed,
        device="cpu",
        verbose=0,
    )
    if cfg.algo == "td3" and cfg.action_noise > 0:
        from stable_baselines3.common.noise import NormalActionNoise

        dim = env.action_space.shape[0]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(dim), cfg.action_noise * np.ones(dim))
    kwargs.update(cfg.kwargs)
    cls = sb3.SAC if cfg.algo == "sac" else sb3.TD3
    return cls("MlpPolicy", env, **kwargs)


def train(
    cfg: Config,
    env,
    *,
    time_budget_s: float | None = None,
    callback: Callable[[int, Any], dict | None] | None = None,
    callback_every: int = 1_000,
):
    """Train SAC/TD3 on ``env`` for ``cfg.total_steps`` steps or ``time_budget_s`` seconds, whichever ends first.

    Args:
        cfg: hyper-parameters.
        env: a Gymnasium env (SB3 wraps it in its own vector env).
        time_budget_s: stop after this much wall time, s.
        callback: called as ``callback(step, model)`` at every history record; a returned dict is merged in.
        callback_every: environment steps between history records.

    Returns:
        The trained SB3 model and the history: per record ``step``, ``wall_s``, ``updates`` (gradient
        steps), mean ``episode_return`` since the previous record, and the callback's fields.
    """
    _sb3()
    from stable_baselines3.common.callbacks import BaseCallback

    model = make(cfg, env)
    history: list[dict] = []

    class Budget(BaseCallback):
        def _on_training_start(self) -> None:
            self.start = time.perf_counter()
            self.returns: list[float] = []

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", ()):
                if "episode" in info:
                    self.returns.append(float(info["episode"]["r"]))
            step = self.model.num_timesteps
            wall_s = time.perf_counter() - self.start
            out_of_time = time_budget_s is not None and wall_s >= time_budget_s
            if step % callback_every == 0 or out_of_time or step >= cfg.total_steps:
                record = {"step": step, "wall_s": wall_s, "updates": int(self.model._n_updates)}
                record["episode_return"] = float(np.mean(self.returns)) if self.returns else None
                self.returns = []
                if callback is not None:
                    record.update(callback(step, self.model) or {})
                history.append(record)
            return not out_of_time

    model.learn(total_timesteps=cfg.total_steps, callback=Budget())
    return model, history


def act(model, obs, deterministic: bool = True) -> np.ndarray:
    """Actions in the env's action space for one observation or a batch (B, obs_dim)."""
    action, _ = model.predict(np.asarray(obs, np.float32), deterministic=deterministic)
    return action


def save(model, path: str | Path) -> None:
    """Write the model (SB3's zip format; the replay buffer is not included)."""
    model.save(str(path))


def load(algo: str, path: str | Path, env=None):
    """Load a ``save``d SAC/TD3 model (``env`` is needed only to train it further)."""
    sb3 = _sb3()
    if algo not in ALGOS:
        raise ValueError(f"algo: {algo!r} is not one of {ALGOS}")
    return (sb3.SAC if algo == "sac" else sb3.TD3).load(str(path), env=env, device="cpu")
