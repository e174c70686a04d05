"""SAC and TD3 from Stable-Baselines3, as baselines on the same Gymnasium envs as D3PG and DDPG.

A thin wrapper: build the SB3 model from a ``Config``, train it under a step and wall-time budget
with a periodic callback (the same history records as ``ddpg.train``), act on single observations or
batches, save/load; and ``Actor``, SAC or TD3 as the allocation actor of the T2DRL trainer (its loop
collects the transitions, SB3 takes the gradient steps). Stable-Baselines3 is imported lazily, so the
rest of ``orchestrator.algos`` works without it; it comes with the ``rl`` extra (``pip install
'edgetb[rl]'``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
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
    """hidden widths of the actor, and of the critic unless ``critic_hidden`` is set (SB3's ``net_arch``)"""
    critic_hidden: tuple[int, ...] | None = None
    """hidden widths of the critic (None: ``hidden``)"""
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


def make(cfg: Config, env, **overrides: Any):
    """A fresh SB3 model (``SAC`` or ``TD3``) on ``env`` built from ``cfg``; ``overrides`` go to the constructor
    last."""
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
        policy_kwargs={"net_arch": {"pi": list(cfg.hidden), "qf": list(cfg.critic_hidden or cfg.hidden)}},
        seed=cfg.seed,
        device="cpu",
        verbose=0,
    )
    if cfg.algo == "td3" and cfg.action_noise > 0:
        from stable_baselines3.common.noise import NormalActionNoise

        dim = env.action_space.shape[0]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(dim), cfg.action_noise * np.ones(dim))
    kwargs.update(cfg.kwargs)
    kwargs.update(overrides)
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


class Actor:
    """SAC or TD3 as the allocation actor of the T2DRL trainer: the same ``act`` / ``update`` / ``save`` as
    ``d3pg.D3PG`` and ``ddpg.DDPG``, so the two-timescale loop and live fine-tuning drive it unchanged.

    The loop, not SB3's ``learn``, collects the transitions and draws the batches from its own replay
    buffer; ``update(batch)`` hands one batch to SB3's own gradient step (``model.train``) through a
    one-batch stand-in for SB3's replay buffer. The losses, target updates, TD3's delayed actor and SAC's
    entropy tuning are Stable-Baselines3's. SB3 builds its networks from an env's spaces: a spaces-only
    env (never stepped) stands in.

    Args:
        obs_dim: observation length.
        act_dim: action length (actions live in [-1, 1]^act_dim).
        cfg: hyper-parameters (``cfg.algo`` picks SAC or TD3; ``total_steps`` is not used).
    """

    def __init__(self, obs_dim: int, act_dim: int, cfg: Config | None = None) -> None:
        _sb3()
        from stable_baselines3.common.logger import configure

        self.cfg = cfg = cfg or Config()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        # SB3's own buffer is never filled (``_OneBatch`` stands in), so it gets one slot
        self.model = make(cfg, _spaces_env(obs_dim, act_dim), buffer_size=1, learning_starts=0)
        self.model.set_logger(configure(None, []))  # SB3's train() records its losses here; nothing is written
        self.model.replay_buffer = self._batches = _OneBatch()
        self.rng = np.random.default_rng((cfg.seed, 7))
        self.env_steps = 0

    @property
    def updates(self) -> int:
        """gradient steps taken"""
        return int(self.model._n_updates)

    def act(self, obs, deterministic: bool = False) -> np.ndarray:
        """Actions in [-1, 1] for one observation (obs_dim,) or a batch (B, obs_dim). Exploring: SAC samples its
        Gaussian policy; TD3 adds N(0, ``action_noise``) to its action, clipped."""
        x = np.asarray(obs, np.float32)
        action, _ = self.model.predict(x, deterministic=deterministic or self.cfg.algo == "td3")
        if not deterministic and self.cfg.algo == "td3" and self.cfg.action_noise > 0:
            action = np.clip(action + self.cfg.action_noise * self.rng.standard_normal(action.shape), -1.0, 1.0)
        return np.asarray(action, np.float32)

    def update(self, batch) -> dict[str, float]:
        """One SB3 gradient step (critic, and the actor when due) on ``batch`` (a ``replay.Batch``)."""
        self._batches.put(batch)
        self.model.train(gradient_steps=1, batch_size=len(batch.rewards))
        values = self.model.logger.name_to_value
        return {k.removeprefix("train/"): float(v) for k, v in values.items() if k.endswith("_loss")}

    def state_dict(self) -> dict:
        """Config, dimensions, counters, SB3's networks and optimisers (and SAC's entropy coefficient)."""
        log_ent_coef = getattr(self.model, "log_ent_coef", None)
        return {
            "algo": self.cfg.algo, "config": asdict(self.cfg), "obs_dim": self.obs_dim, "act_dim": self.act_dim,
            "updates": self.updates, "env_steps": self.env_steps, "params": self.model.get_parameters(),
            "log_ent_coef": None if log_ent_coef is None else log_ent_coef.detach().clone(),
        }  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        import torch

        self.model.set_parameters(state["params"], exact_match=True)
        if state.get("log_ent_coef") is not None:
            with torch.no_grad():
                self.model.log_ent_coef.copy_(state["log_ent_coef"])
        self.model._n_updates, self.env_steps = int(state["updates"]), int(state["env_steps"])

    def save(self, path: str | Path) -> None:
        import torch

        torch.save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | Path) -> Actor:
        """A new actor from ``save``'s file (its own config and dimensions)."""
        import torch

        state = torch.load(path, weights_only=True)
        config = dict(state["config"])
        for key in ("hidden", "critic_hidden"):
            if config.get(key) is not None:
                config[key] = tuple(config[key])
        actor = cls(state["obs_dim"], state["act_dim"], Config(**config))
        actor.load_state_dict(state)
        return actor


class _OneBatch:
    """Stands in for SB3's replay buffer in ``Actor.update``: ``sample`` returns the batch last ``put``."""

    def __init__(self) -> None:
        self.batch = None

    def put(self, batch) -> None:
        self.batch = batch

    def sample(self, batch_size: int, env=None):
        from stable_baselines3.common.type_aliases import ReplayBufferSamples

        b, self.batch = self.batch, None
        if b is None:
            raise RuntimeError("sample: no batch was put (Actor.update hands over one batch per gradient step)")
        return ReplayBufferSamples(
            observations=b.obs, actions=b.actions, next_observations=b.next_obs,
            dones=b.dones.reshape(-1, 1).float(), rewards=b.rewards.reshape(-1, 1).float(),
        )  # fmt: skip


def _spaces_env(obs_dim: int, act_dim: int):
    """A Gymnasium env with Box spaces in [-1, 1] and nothing else: SB3 sizes its networks from it."""
    import gymnasium as gym

    class Spaces(gym.Env):
        observation_space = gym.spaces.Box(-1.0, 1.0, (obs_dim,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)

        def reset(self, *, seed=None, options=None):
            raise NotImplementedError("a spaces-only env: the T2DRL trainer steps the simulator itself")

        def step(self, action):
            raise NotImplementedError("a spaces-only env: the T2DRL trainer steps the simulator itself")

    return Spaces()
