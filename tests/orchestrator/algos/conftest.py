"""Tiny environments with known optima for the learners' tests.

Fixtures:
    _one_thread (autouse): torch runs on one intra-op thread during each test (``one_torch_thread``).
    chain_env: ``chain_env(**kwargs) -> ChainEnv``: a 5-state corridor, Discrete(3) actions, masks.
    target_env: ``target_env(**kwargs) -> TargetEnv``: a one-step continuous problem, optimum a* = A s.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces


class ChainEnv(gym.Env):
    """States 0..4 (one-hot); actions 0 left, 1 right, 2 stay. Reaching state 4 pays 1 and ends the episode;
    every other step costs 0.01; episodes are truncated after 20 steps. "left" is invalid in state 0
    (``info["action_mask"]``), and taking an invalid action raises."""

    def __init__(self, states: int = 5) -> None:
        self.states = states
        self.observation_space = spaces.Box(0.0, 1.0, (states,), np.float32)
        self.action_space = spaces.Discrete(3)
        self.invalid_taken = 0

    def _obs(self) -> tuple[np.ndarray, dict]:
        mask = np.array([self.pos > 0, True, True])
        return np.eye(self.states, dtype=np.float32)[self.pos], {"action_mask": mask}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.t = 0, 0
        return self._obs()

    def step(self, action):
        if action == 0 and self.pos == 0:
            raise AssertionError("the agent took a masked action")
        self.pos = max(0, min(self.states - 1, self.pos + {0: -1, 1: 1, 2: 0}[int(action)]))
        self.t += 1
        done = self.pos == self.states - 1
        obs, info = self._obs()
        return obs, (1.0 if done else -0.01), done, self.t >= 20 and not done, info


class TargetEnv(gym.Env):
    """One step: observation s ~ U(-1, 1)^d, reward -||a - A s||^2 with a fixed A (||A s|| < 1), optimum 0."""

    def __init__(self, dim: int = 2) -> None:
        self.dim = dim
        self.matrix = 0.7 * np.array([[0.0, 1.0], [-1.0, 0.0]]) if dim == 2 else 0.7 * np.eye(dim)[::-1]
        self.observation_space = spaces.Box(-1.0, 1.0, (dim,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (dim,), np.float32)

    def optimum(self, obs: np.ndarray) -> np.ndarray:
        return obs @ self.matrix.T

    def score(self, act, obs: np.ndarray) -> float:
        """Mean reward of ``act`` (batched) on the observations ``obs``."""
        return float(-((act(obs) - self.optimum(obs)) ** 2).sum(axis=-1).mean())

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.obs = self.np_random.uniform(-1.0, 1.0, self.dim).astype(np.float32)
        return self.obs.copy(), {}

    def step(self, action):
        reward = -float(((np.asarray(action) - self.optimum(self.obs)) ** 2).sum())
        return self.obs.copy(), reward, True, False, {}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every learner test runs on one torch thread (``one_torch_thread`` in tests/conftest.py)."""
    yield


@pytest.fixture
def chain_env():
    return ChainEnv


@pytest.fixture
def target_env():
    return TargetEnv
