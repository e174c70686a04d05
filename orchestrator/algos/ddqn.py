"""DDQN: double deep Q-learning (van Hasselt et al., 2016) with action masks, for the caching policy.

An MLP Q-network over discrete actions; the bootstrap target lets the *online* network pick the next
action (argmax over the valid ones) and the *target* network evaluate it. Epsilon-greedy exploration
with a linear decay; Huber loss; the target network is copied every ``target_update_every`` updates
(``tau = 1``) or Polyak-averaged every update (``tau < 1``). Masks: ``act(obs, mask)`` takes a boolean
vector of valid actions (invalid Q-values become -inf, random exploration draws only valid actions);
``train`` reads the env's mask from ``info["action_mask"]`` when present (Gymnasium's convention).

Read top to bottom: ``Config``, ``QNetwork``, ``DDQN`` (``act``, ``update``, checkpointing), ``train``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from orchestrator.algos.replay import Batch, ReplayBuffer, as_batch, mlp, seed_everything, soft_update


@dataclass
class Config:
    """DDQN hyper-parameters."""

    seed: int = 0
    """seed of torch, NumPy, the env, exploration and replay sampling"""
    total_steps: int = 50_000
    """environment steps to train for (``train`` may stop earlier on its time budget)"""
    learning_starts: int = 500
    """environment steps before the first update"""
    buffer_size: int = 50_000
    """replay capacity, transitions"""
    batch_size: int = 128
    """transitions per update"""
    train_every: int = 1
    """environment steps between updates"""
    gamma: float = 0.99
    """discount factor"""
    lr: float = 5e-4
    """Adam learning rate"""
    hidden: tuple[int, ...] = (128, 128)
    """hidden widths of the Q-network"""
    epsilon_start: float = 1.0
    """exploration probability at step 0"""
    epsilon_end: float = 0.05
    """exploration probability after the decay"""
    epsilon_decay_steps: int = 10_000
    """environment steps of the linear decay from ``epsilon_start`` to ``epsilon_end``"""
    target_update_every: int = 500
    """updates between target syncs when ``tau == 1`` (hard copies)"""
    tau: float = 1.0
    """1: hard copy every ``target_update_every`` updates; < 1: Polyak averaging after every update"""
    grad_clip: float = 10.0
    """max gradient norm; 0: no clipping"""


class QNetwork(nn.Module):
    """Q(s, .): an MLP from an observation to one value per action."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


def masked(q: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Q-values with invalid actions (``mask`` False) set to -inf."""
    return q if mask is None else q.masked_fill(~mask, float("-inf"))


class DDQN:
    """The agent: online and target Q-networks, optimiser, exploration schedule.

    Args:
        obs_dim: observation length.
        n_actions: number of discrete actions.
        cfg: hyper-parameters.
    """

    def __init__(self, obs_dim: int, n_actions: int, cfg: Config | None = None) -> None:
        self.cfg = cfg = cfg or Config()
        self.obs_dim, self.n_actions = obs_dim, n_actions
        self.q = QNetwork(obs_dim, n_actions, cfg.hidden)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.opt = torch.optim.Adam(self.q.parameters(), lr=cfg.lr)
        self.rng = np.random.default_rng(cfg.seed)
        self.updates = 0
        self.env_steps = 0

    def epsilon(self, step: int | None = None) -> float:
        """The exploration probability at environment step ``step`` (default: the steps taken so far)."""
        cfg = self.cfg
        step = self.env_steps if step is None else step
        frac = min(step / max(cfg.epsilon_decay_steps, 1), 1.0)
        return cfg.epsilon_start + frac * (cfg.epsilon_end - cfg.epsilon_start)

    def act(self, obs, mask=None, epsilon: float = 0.0):
        """Greedy valid action(s) (int, or (B,) array for a batch), random with probability ``epsilon``.

        Args:
            obs: one observation (obs_dim,) or a batch (B, obs_dim).
            mask: boolean valid actions, (n_actions,) or (B, n_actions); None: all valid.
            epsilon: exploration probability (``train`` passes the decayed schedule; 0: greedy).
        """
        x, single = as_batch(obs, self.obs_dim)
        m = None if mask is None else torch.as_tensor(np.asarray(mask, bool)).reshape(x.shape[0], self.n_actions)
        if m is not None and not bool(m.any(dim=-1).all()):
            raise ValueError("act: every observation needs at least one valid action")
        with torch.inference_mode():
            actions = masked(self.q(x), m).argmax(dim=-1).numpy()
        explore = self.rng.random(x.shape[0]) < epsilon
        for i in np.flatnonzero(explore):
            valid = np.arange(self.n_actions) if m is None else np.flatnonzero(m[i].numpy())
            actions[i] = self.rng.choice(valid)
        return int(actions[0]) if single else actions

    @torch.no_grad()
    def td_target(self, batch: Batch) -> torch.Tensor:
        """``r + gamma (1 - done) Q_target(s', argmax_a' Q(s', a'))``, the argmax over the valid next actions."""
        next_actions = masked(self.q(batch.next_obs), batch.next_masks).argmax(dim=-1, keepdim=True)
        next_q = self.q_target(batch.next_obs).gather(1, next_actions).squeeze(1)
        return batch.rewards + self.cfg.gamma * (1.0 - batch.dones) * next_q

    def update(self, batch: Batch) -> dict[str, float]:
        """One Huber-loss step towards ``td_target``, then the target sync (hard every N, or soft)."""
        cfg = self.cfg
        target = self.td_target(batch)
        q = self.q(batch.obs).gather(1, batch.actions.long().unsqueeze(1)).squeeze(1)
        loss = F.smooth_l1_loss(q, target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.q.parameters(), cfg.grad_clip)
        self.opt.step()
        self.updates += 1
        if cfg.tau < 1.0:
            soft_update(self.q_target, self.q, cfg.tau)
        elif self.updates % cfg.target_update_every == 0:
            self.q_target.load_state_dict(self.q.state_dict())
        return {"loss": float(loss.detach()), "q": float(q.detach().mean())}

    def state_dict(self) -> dict:
        """Everything needed to resume: config, dimensions, counters, networks, optimiser."""
        return {
            "algo": "ddqn",
            "config": asdict(self.cfg),
            "obs_dim": self.obs_dim,
            "n_actions": self.n_actions,
            "updates": self.updates,
            "env_steps": self.env_steps,
            "q": self.q.state_dict(),
            "q_target": self.q_target.state_dict(),
            "opt": self.opt.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Load ``state_dict``'s output (copied: the optimiser would otherwise share its moment tensors)."""
        state = copy.deepcopy(state)
        self.q.load_state_dict(state["q"])
        self.q_target.load_state_dict(state["q_target"])
        self.opt.load_state_dict(state["opt"])
        self.updates, self.env_steps = int(state["updates"]), int(state["env_steps"])

    def save(self, path: str | Path) -> None:
        torch.save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | Path) -> DDQN:
        """A new agent from ``save``'s file (its own config and dimensions)."""
        state = torch.load(path, weights_only=True)
        config = state["config"]
        config.update(hidden=tuple(config["hidden"]))
        agent = cls(state["obs_dim"], state["n_actions"], Config(**config))
        agent.load_state_dict(state)
        return agent


def train(
    cfg: Config,
    env,
    *,
    time_budget_s: float | None = None,
    callback: Callable[[int, DDQN], dict | None] | None = None,
    callback_every: int = 1_000,
) -> tuple[DDQN, list[dict]]:
    """Train on a Gymnasium env with a Discrete action space; masks from ``info["action_mask"]`` if given.

    Args:
        cfg: hyper-parameters (``total_steps`` environment steps at most).
        env: the environment (``reset``/``step``).
        time_budget_s: stop after this much wall time, s (checked every step).
        callback: called as ``callback(step, agent)`` at every history record; a returned dict is merged in.
        callback_every: environment steps between history records.

    Returns:
        The agent and the history: per record ``step``, ``wall_s``, ``updates``, ``epsilon``, the mean
        ``episode_return`` of the episodes ended since the previous record, and the callback's fields.
    """
    seed_everything(cfg.seed)
    obs_dim, n_actions = env.observation_space.shape[0], int(env.action_space.n)
    agent = DDQN(obs_dim, n_actions, cfg)
    buffer = ReplayBuffer(obs_dim, 0, cfg.buffer_size, n_actions=n_actions, seed=cfg.seed)
    obs, info = env.reset(seed=cfg.seed)
    start, history, returns, episode_return = time.perf_counter(), [], [], 0.0
    for step in range(1, cfg.total_steps + 1):
        action = agent.act(obs, info.get("action_mask"), epsilon=agent.epsilon(step - 1))
        next_obs, reward, terminated, truncated, info = env.step(action)
        buffer.add(obs, action, reward, next_obs, terminated, info.get("action_mask"))
        episode_return += float(reward)
        if terminated or truncated:
            returns.append(episode_return)
            (obs, info), episode_return = env.reset(), 0.0
        else:
            obs = next_obs
        if step > cfg.learning_starts and step % cfg.train_every == 0:
            agent.update(buffer.sample(cfg.batch_size))
        agent.env_steps = step
        wall_s = time.perf_counter() - start
        out_of_time = time_budget_s is not None and wall_s >= time_budget_s
        if step % callback_every == 0 or out_of_time or step == cfg.total_steps:
            record = {"step": step, "wall_s": wall_s, "updates": agent.updates, "epsilon": agent.epsilon(step)}
            record["episode_return"] = float(np.mean(returns)) if returns else None
            returns = []
            if callback is not None:
                record.update(callback(step, agent) or {})
            history.append(record)
        if out_of_time:
            break
    return agent, history
