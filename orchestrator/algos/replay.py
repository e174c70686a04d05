"""Shared plumbing of the learners: a fixed-capacity replay buffer, target-network updates, seeding, MLPs.

Everything here is algorithm-agnostic; each algorithm file (``ddqn.py``, ``ddpg.py``, ``d3pg.py``)
reads top to bottom and only borrows these few helpers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class Batch:
    """A sampled mini-batch, as float32 tensors (``actions`` int64 for discrete buffers).

    Attributes:
        obs: observations, shape (B, obs_dim).
        actions: actions, shape (B, act_dim), or (B,) for discrete actions.
        rewards: rewards, shape (B,).
        next_obs: next observations, shape (B, obs_dim).
        dones: 1.0 where the episode *terminated* after the transition (not on truncation), shape (B,).
        next_masks: boolean valid-action masks of the next state, shape (B, n_actions), or None.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    dones: torch.Tensor
    next_masks: torch.Tensor | None = None


class ReplayBuffer:
    """A circular buffer of transitions with a fixed capacity; the oldest are overwritten first.

    Args:
        obs_dim: length of an observation vector.
        act_dim: length of an action vector; 0 for a discrete action (stored as one integer).
        capacity: most transitions kept.
        n_actions: for discrete actions with masks: the number of actions (stores next-state masks).
        seed: seed of the sampling generator.
    """

    def __init__(self, obs_dim: int, act_dim: int, capacity: int, n_actions: int = 0, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"capacity: {capacity} must be >= 1")
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.actions = np.zeros((capacity, act_dim), np.float32) if act_dim else np.zeros(capacity, np.int64)
        self.rewards = np.zeros(capacity, np.float32)
        self.dones = np.zeros(capacity, np.float32)
        self.next_masks = np.ones((capacity, n_actions), bool) if n_actions else None
        self.pos = 0
        self.size = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward: float, next_obs, done: bool, next_mask=None) -> None:
        """Store one transition (``done``: terminated, so no bootstrap from ``next_obs``)."""
        i = self.pos
        self.obs[i] = obs
        self.actions[i] = action
        self.rewards[i] = reward
        self.next_obs[i] = next_obs
        self.dones[i] = float(done)
        if self.next_masks is not None:
            self.next_masks[i] = True if next_mask is None else next_mask
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int) -> Batch:
        """A uniform draw (with replacement) of ``batch_size`` stored transitions."""
        if self.size == 0:
            raise ValueError("sample: the buffer is empty")
        idx = self.rng.integers(0, self.size, size=batch_size)
        return Batch(
            obs=torch.from_numpy(self.obs[idx]),
            actions=torch.from_numpy(self.actions[idx]),
            rewards=torch.from_numpy(self.rewards[idx]),
            next_obs=torch.from_numpy(self.next_obs[idx]),
            dones=torch.from_numpy(self.dones[idx]),
            next_masks=None if self.next_masks is None else torch.from_numpy(self.next_masks[idx]),
        )


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``target <- (1 - tau) target + tau source``; ``tau = 1`` copies."""
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        t.lerp_(s, tau)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's legacy global generator and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """A plain multilayer perceptron: Linear + activation per hidden layer, then a Linear output."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), activation()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def as_batch(obs, dim: int) -> tuple[torch.Tensor, bool]:
    """``obs`` as a float32 (B, dim) tensor, and whether it was a single observation."""
    x = torch.as_tensor(np.asarray(obs, np.float32))
    single = x.ndim == 1
    return (x.reshape(1, dim) if single else x), single
