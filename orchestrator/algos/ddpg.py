"""DDPG: deep deterministic policy gradient (Lillicrap et al., 2016), the baseline D3PG is measured against.

An MLP actor with a tanh output in [-1, 1]^d, an MLP critic Q(s, a), Gaussian exploration noise on
the action, target networks that follow by Polyak averaging (tau). The actor maximises
``Q(s, actor(s))``; the critic regresses on ``r + gamma (1 - done) Q'(s', actor'(s'))``.

Read top to bottom: ``Config``, the networks, ``DDPG`` (``act``, ``update``, checkpointing), ``train``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from orchestrator.algos.loop import run_continuous
from orchestrator.algos.replay import Batch, as_batch, mlp, seed_everything, soft_update


@dataclass
class Config:
    """DDPG hyper-parameters (defaults: tuned on the 10-channel water-filling problem)."""

    seed: int = 0
    """seed of torch, NumPy, the env and the replay sampling"""
    total_steps: int = 200_000
    """environment steps to train for (``train`` may stop earlier on its time budget)"""
    learning_starts: int = 1_000
    """uniformly random actions before the first update"""
    buffer_size: int = 100_000
    """replay capacity, transitions"""
    batch_size: int = 256
    """transitions per update"""
    updates_per_step: int = 1
    """gradient updates per environment step"""
    gamma: float = 0.99
    """discount factor (no bootstrap when a whole batch terminated, as in one-step problems)"""
    tau: float = 0.005
    """Polyak factor of the soft target updates"""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor"""
    critic_lr: float = 1e-3
    """Adam learning rate of the critic"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden widths of the actor MLP"""
    critic_hidden: tuple[int, ...] = (256, 256)
    """hidden widths of the critic MLP"""
    exploration_noise: float = 0.1
    """std of the Gaussian noise added to the (tanh) action when acting non-deterministically"""
    grad_clip: float = 0.0
    """max gradient norm of actor and critic updates; 0: no clipping"""
    action_l2: float = 0.0
    """weight of the actions' squared norm (batch mean) in the actor loss; 0: off (as ``d3pg.Config.action_l2``:
    with a residual action it keeps the actor at the rule where the critic does not pay for leaving it)"""


class Actor(nn.Module):
    """mu(s): an MLP with a tanh output, actions in [-1, 1]^act_dim."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, act_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))


class Critic(nn.Module):
    """Q(s, a): an MLP on the concatenated state and action."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_dim + act_dim, hidden, 1)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, actions], dim=-1)).squeeze(-1)


class DDPG:
    """The agent: actor, critic, their targets and optimisers.

    Args:
        obs_dim: observation length.
        act_dim: action length (actions live in [-1, 1]^act_dim).
        cfg: hyper-parameters.
    """

    def __init__(self, obs_dim: int, act_dim: int, cfg: Config | None = None) -> None:
        self.cfg = cfg = cfg or Config()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.actor = Actor(obs_dim, act_dim, cfg.hidden)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = Critic(obs_dim, act_dim, cfg.critic_hidden)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.updates = 0
        self.env_steps = 0

    def act(self, obs, deterministic: bool = False) -> np.ndarray:
        """Actions in [-1, 1] for one observation (obs_dim,) or a batch (B, obs_dim); noisy unless deterministic."""
        x, single = as_batch(obs, self.obs_dim)
        with torch.inference_mode():
            a = self.actor(x)
            if not deterministic and self.cfg.exploration_noise > 0:
                a = (a + self.cfg.exploration_noise * torch.randn_like(a)).clamp(-1.0, 1.0)
        a = a.numpy()
        return a[0] if single else a

    def update(self, batch: Batch) -> dict[str, float]:
        """One critic step, one actor step, then the soft target updates."""
        cfg = self.cfg
        target = batch.rewards
        if cfg.gamma > 0 and not bool(batch.dones.all()):
            with torch.no_grad():
                next_q = self.critic_target(batch.next_obs, self.actor_target(batch.next_obs))
                target = batch.rewards + cfg.gamma * (1.0 - batch.dones) * next_q
        q = self.critic(batch.obs, batch.actions)
        critic_loss = F.mse_loss(q, target)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.grad_clip)
        self.critic_opt.step()

        self.critic.requires_grad_(False)
        actions = self.actor(batch.obs)
        actor_loss = -self.critic(batch.obs, actions).mean()
        if cfg.action_l2 > 0:
            actor_loss = actor_loss + cfg.action_l2 * actions.square().sum(-1).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.grad_clip)
        self.actor_opt.step()
        self.critic.requires_grad_(True)

        soft_update(self.actor_target, self.actor, cfg.tau)
        soft_update(self.critic_target, self.critic, cfg.tau)
        self.updates += 1
        return {"critic_loss": float(critic_loss.detach()), "actor_loss": float(actor_loss.detach())}

    def state_dict(self) -> dict:
        """Everything needed to resume: config, dimensions, counters, networks, targets, optimisers."""
        return {
            "algo": "ddpg",
            "config": asdict(self.cfg),
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "updates": self.updates,
            "env_steps": self.env_steps,
            **{name: getattr(self, name).state_dict() for name in _MODULES},
        }

    def load_state_dict(self, state: dict) -> None:
        """Load ``state_dict``'s output (copied: optimisers would otherwise share their moment tensors)."""
        state = copy.deepcopy(state)
        for name in _MODULES:
            getattr(self, name).load_state_dict(state[name])
        self.updates, self.env_steps = int(state["updates"]), int(state["env_steps"])

    def save(self, path: str | Path) -> None:
        torch.save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | Path) -> DDPG:
        """A new agent from ``save``'s file (its own config and dimensions)."""
        state = torch.load(path, weights_only=True)
        config = state["config"]
        config.update(hidden=tuple(config["hidden"]), critic_hidden=tuple(config["critic_hidden"]))
        agent = cls(state["obs_dim"], state["act_dim"], Config(**config))
        agent.load_state_dict(state)
        return agent


_MODULES = ("actor", "actor_target", "critic", "critic_target", "actor_opt", "critic_opt")


def train(
    cfg: Config,
    env,
    *,
    time_budget_s: float | None = None,
    callback: Callable[[int, DDPG], dict | None] | None = None,
    callback_every: int = 1_000,
) -> tuple[DDPG, list[dict]]:
    """Train on a Gymnasium env with a Box action space (actions rescaled from [-1, 1] to its bounds).

    Args:
        cfg: hyper-parameters (``total_steps`` environment steps at most).
        env: the environment (``reset``/``step``).
        time_budget_s: stop after this much wall time, s (checked every step).
        callback: called as ``callback(step, agent)`` every ``callback_every`` steps; a returned dict
            is merged into that step's history record.
        callback_every: environment steps between history records.

    Returns:
        The agent and the history: per record ``step``, ``wall_s``, ``updates``, the mean
        ``episode_return`` of the episodes ended since the previous record, and the callback's fields.
    """
    seed_everything(cfg.seed)
    agent = DDPG(env.observation_space.shape[0], env.action_space.shape[0], cfg)
    history = run_continuous(
        agent, cfg, env, time_budget_s=time_budget_s, callback=callback, callback_every=callback_every
    )
    return agent, history
